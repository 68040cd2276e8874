#!/usr/bin/env bash
# Fetch the wheels that bench/gpu_check.sh installs on a lent GPU machine.
#
# That machine has torch, transformers, peft, accelerate, pyarrow and httpx
# but no registry access and no TRL; the trainer and judge code also need
# pydantic(-settings) and TRL's own imports (datasets, pandas). Pure-Python
# wheels and CPython 3.12 manylinux wheels land in bench/wheels/; gpu_check
# installs only those whose module the machine lacks. Run it here (PyPI is
# reachable), then carry bench/wheels with the working tree.
set -euo pipefail
cd "$(dirname "$0")"
PIP=${PIP:-../.venv/bin/pip}
mkdir -p wheels
# Same versions as this project's venv, so the code runs against what it was
# tested with.
version() { ../.venv/bin/python -c "import importlib.metadata as m; print(m.version('$1'))"; }
pins=()
for dist in trl datasets dill multiprocess xxhash fsspec pandas python-dateutil \
    tzdata pydantic pydantic-core pydantic-settings python-dotenv \
    typing-inspection annotated-types; do
  pins+=("$dist==$(version "$dist")")
done
"$PIP" download --quiet --no-deps --only-binary=:all: --dest wheels \
  --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux_2_28_x86_64 --python-version 3.12 \
  --implementation cp "${pins[@]}"
du -sh wheels
