# syntax=docker/dockerfile:1
# The CPU image: judge (MiniLM few-shot backend), tiny-policy trainer and chat
# service on any laptop. Layers go from least to most often changed, so
# editing code rebuilds only the last two layers, not the 1 GB of wheels.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    TOKENIZERS_PARALLELISM=false

RUN useradd --create-home --uid 1000 rlaif
WORKDIR /app

# torch first, from the CPU wheel index: the PyPI wheel of the same version is
# the CUDA build, several GB that a CPU machine never uses.
RUN --mount=type=cache,target=/root/.cache/pip \
    pip install --index-url https://download.pytorch.org/whl/cpu torch==2.13.0

# The project's dependencies, read from pyproject.toml alone: this layer is
# rebuilt only when the dependency list changes, not when code does.
COPY pyproject.toml ./
RUN --mount=type=cache,target=/root/.cache/pip \
    python -c "import tomllib; d = tomllib.load(open('pyproject.toml', 'rb')); \
print('\n'.join(d['project']['dependencies']))" > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt torch==2.13.0

# The code, configs and shipped data. The dependencies are all in place, so
# this install only builds the project itself (torch pinned: never re-resolved).
COPY README.md ./
COPY rlaif ./rlaif
COPY judge_server ./judge_server
COPY trainer ./trainer
COPY services ./services
COPY configs ./configs
COPY data ./data
COPY docker/*.sh docker/*.py ./docker/
RUN --mount=type=cache,target=/root/.cache/pip \
    pip install . torch==2.13.0 \
    && mkdir -p /app/runs /app/logs /models \
    && chown rlaif:rlaif /app/runs /app/logs /models

# Named volumes start as copies of these folders, ownership included, so the
# unprivileged user can write runs, logs and model caches.
USER rlaif
VOLUME ["/app/runs", "/app/logs"]
ENTRYPOINT ["rlaif"]
CMD ["--help"]
