"""Prometheus metrics that stay correct with several uvicorn workers.

Each uvicorn worker is its own process with its own counters, and a scrape
of ``/metrics`` reaches one worker at random: without care, totals jump
around and undercount. prometheus-client's multiprocess mode fixes that:
when ``PROMETHEUS_MULTIPROC_DIR`` is set *before* prometheus_client creates
any metric, every process writes its values to memory-mapped files in that
folder and ``/metrics`` sums the files of all workers.

The service CLI sets the variable (and empties the folder of a previous
run) before it starts the workers; in one process nothing is needed.
Gauges need a ``multiprocess_mode`` (``livesum`` for a queue depth) to say
how the workers' values combine.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from fastapi import APIRouter, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    generate_latest,
    multiprocess,
)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def multiprocess_dir() -> Path | None:
    """The shared metrics folder, or None when running as one process."""
    value = os.environ.get(MULTIPROC_ENV) or os.environ.get(MULTIPROC_ENV.lower())
    return Path(value) if value else None


def prepare_multiprocess_dir(path: Path) -> Path:
    """Empty ``path`` and export it, before any worker starts.

    Files left by a previous run would be summed into the new totals.
    """
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    os.environ[MULTIPROC_ENV] = str(path)
    return path


def new_registry() -> CollectorRegistry:
    """A registry to create one app's metrics in.

    One per app rather than the global one, so several apps (tests, a
    benchmark) can live in one process without duplicate-name errors. In
    multiprocess mode the values go to the shared files regardless.
    """
    return CollectorRegistry(auto_describe=True)


def exposition(registry: CollectorRegistry) -> bytes:
    """The text exposition of ``registry``, or of all workers' files.

    The process-wide default registry follows: it holds the process and GC
    collectors and, when vLLM runs in-process, the engine's own ``vllm:``
    metrics (queue, KV cache, prefix cache), which the dashboards read.
    """
    if multiprocess_dir() is None:
        ours = generate_latest(registry)
    else:
        combined = CollectorRegistry()
        multiprocess.MultiProcessCollector(combined)
        ours = generate_latest(combined)
    return ours + generate_latest(REGISTRY)


def metrics_router(registry: CollectorRegistry) -> APIRouter:
    """``GET /metrics`` in the Prometheus text format."""
    router = APIRouter(tags=["metrics"])

    @router.get("/metrics")
    def metrics() -> Response:
        return Response(exposition(registry), media_type=CONTENT_TYPE_LATEST)

    return router


def mark_worker_dead(pid: int | None = None) -> None:
    """Drop a stopped worker's live gauges from the combined view."""
    if multiprocess_dir() is not None:
        multiprocess.mark_process_dead(pid if pid is not None else os.getpid())
