#!/bin/sh
# One-shot setup of the CPU profile: the tiny policy and the prompt files that
# the demo makes, written once into the `runs` volume. A second start finds
# them and exits at once, so `docker compose up` stays cheap to repeat.
set -eu

BASE="${RLAIF_BASE_DIR:-runs/demo/base}"
PROMPTS="${RLAIF_PROMPTS_DIR:-runs/demo/prompts}"

# bootstrap.json is written last, so its presence means the model and the
# tokenizer were saved completely.
if [ ! -f "$BASE/bootstrap.json" ]; then
    echo "bootstrap: training the tiny policy into $BASE"
    rlaif bootstrap --corpus data/food_qa.jsonl --out "$BASE"
else
    echo "bootstrap: tiny policy found in $BASE"
fi

sh "$(dirname "$0")/make-prompts.sh" "$PROMPTS" "${RLAIF_N_TRAIN:-1000}"
