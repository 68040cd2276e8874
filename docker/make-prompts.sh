#!/bin/sh
# One-shot: the training and hold-out questions, written once.
#   sh docker/make-prompts.sh OUT_DIR N_TRAIN
# Offline template questions by default; PROMPTS_SOURCE=llm with
# PROMPTS_LLM_URL and PROMPTS_LLM_MODEL asks an OpenAI-compatible endpoint
# instead. The bootstrap corpus is excluded from the hold-out set, as the
# demo does. A second start finds both files and exits at once.
set -eu

out="$1"
n_train="$2"
if [ -f "$out/train.txt" ] && [ -f "$out/holdout.txt" ]; then
    echo "prompts: found in $out"
    exit 0
fi

echo "prompts: generating $n_train training questions into $out"
source="${PROMPTS_SOURCE:-template}"
set -- --source "$source" --topics configs/prompts/topics.txt \
    --n-train "$n_train" --n-holdout 100 \
    --exclude data/food_qa.jsonl --out-dir "$out" --seed 0
if [ "$source" = llm ]; then
    set -- "$@" --llm-url "$PROMPTS_LLM_URL" --llm-model "$PROMPTS_LLM_MODEL"
fi
exec rlaif prompts generate "$@"
