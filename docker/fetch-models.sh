#!/bin/sh
# One-shot: put the GPU profile's weights into the `models` volume.
#   sh docker/fetch-models.sh REPO [REPO ...]
# Each Hugging Face repository goes to /models/<owner>/<name>, the folder
# docker-compose.yml hands to the judge, the trainer and the chat service.
# A finished download leaves a marker, so later starts need no network and
# no token; an interrupted one resumes. Weights you copied in yourself (a
# config.json and no HF_TOKEN) are used as they are. Only safetensors, JSON
# and tokenizer files are fetched: the .bin duplicates would double the
# download.
set -eu

fetch() {
    repo="$1"
    target="${MODELS_DIR:-/models}/$repo"
    if [ -f "$target/.rlaif-complete" ]; then
        echo "models: $repo found in $target"
        return 0
    fi
    if [ -z "${HF_TOKEN:-}" ] && [ -f "$target/config.json" ]; then
        echo "models: using the weights already in $target (no HF_TOKEN to check them)"
        return 0
    fi
    if [ -z "${HF_TOKEN:-}" ]; then
        echo "models: $repo is missing from $target and HF_TOKEN is empty;" \
            "set HF_TOKEN in .env (a token with access to $repo)" >&2
        exit 1
    fi
    echo "models: downloading $repo into $target"
    python - "$repo" "$target" <<'PY'
import sys

from huggingface_hub import snapshot_download

repo, target = sys.argv[1], sys.argv[2]
snapshot_download(
    repo,
    local_dir=target,
    allow_patterns=["*.json", "*.safetensors", "tokenizer.model", "*.txt"],
)
PY
    touch "$target/.rlaif-complete"
}

if [ $# -eq 0 ]; then
    echo "usage: fetch-models.sh REPO [REPO ...]" >&2
    exit 2
fi
for repo in "$@"; do
    fetch "$repo"
done
