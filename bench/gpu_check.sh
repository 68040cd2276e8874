#!/usr/bin/env bash
# The prepared check for a lent GPU machine (issue 9); see bench/gpu_check.py.
#
#   bench/gpu_check.sh [--out FILE.json] [--cpu-smoke]
#
# Runs from the working tree with the machine's own Python (PYTHON=... to
# choose one) and writes one JSON of figures to $OUT/gpu_check.json (or
# --out). Missing pure-Python and cp312 wheels (TRL, pydantic, datasets...)
# are unpacked from bench/wheels/, which bench/fetch_gpu_wheels.sh fills.
# The whole check stops after 8 minutes whatever happens; each part has its
# own smaller time box inside that (GPU_CHECK_TIMEOUT_S and --total-budget-s
# raise them on a machine with more time, e.g. one with vLLM). Exit status 0
# only when every check passed.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-$(command -v python3 || command -v python)}
export PYTHONPATH=".${PYTHONPATH:+:$PYTHONPATH}"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
if [ ! -d bench/wheels ]; then
  echo "bench/wheels is missing: run bench/fetch_gpu_wheels.sh first" >&2
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader \
  2>/dev/null || echo "no nvidia-smi: the CPU is all there is" >&2
timeout --kill-after=10 "${GPU_CHECK_TIMEOUT_S:-480}" "$PY" -m bench.gpu_check "$@"
