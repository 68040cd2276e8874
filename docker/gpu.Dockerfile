# syntax=docker/dockerfile:1
# The GPU image: vLLM judge and chat engines, accelerate + DeepSpeed trainer.
# The base is a slim Python, not a CUDA image: the torch and vLLM wheels carry
# their CUDA libraries and the NVIDIA container toolkit mounts the driver.
# gcc stays because Triton compiles small launcher stubs at run time.
FROM python:3.12-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    TOKENIZERS_PARALLELISM=false \
    HF_HOME=/models/huggingface

RUN apt-get update \
    && apt-get install --yes --no-install-recommends gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 1000 rlaif
WORKDIR /app

# Dependencies and the `gpu` extra (vLLM, DeepSpeed) from pyproject.toml
# alone, before any code, so a code change does not reinstall vLLM. vLLM
# pins the CUDA torch build it was compiled against; it picks torch here.
COPY pyproject.toml ./
RUN --mount=type=cache,target=/root/.cache/pip \
    python -c "import tomllib; d = tomllib.load(open('pyproject.toml', 'rb')); \
p = d['project']; print('\n'.join(p['dependencies'] + p['optional-dependencies']['gpu']))" \
    > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt

COPY README.md ./
COPY rlaif ./rlaif
COPY judge_server ./judge_server
COPY trainer ./trainer
COPY services ./services
COPY configs ./configs
COPY data ./data
COPY docker/*.sh docker/*.py ./docker/
# `.[gpu]` finds every requirement already installed by the layer above.
RUN --mount=type=cache,target=/root/.cache/pip \
    pip install ".[gpu]" \
    && mkdir -p /app/runs /app/logs /models/huggingface \
    && chown -R rlaif:rlaif /app/runs /app/logs /models

USER rlaif
VOLUME ["/app/runs", "/app/logs", "/models"]
ENTRYPOINT ["rlaif"]
CMD ["--help"]
