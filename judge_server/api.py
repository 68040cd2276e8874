"""The judge's HTTP routes and app factory; the logic is in serving.py.

Routes (DESIGN.md): ``POST /v1/score``, ``POST /get_reward``,
``GET /v1/rubrics``, ``GET /healthz``, ``GET /readyz``, ``GET /metrics``.
With an API key set every route but ``/healthz`` and ``/readyz`` requires
it, ``/metrics`` and the OpenAPI docs included (issue 8).
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

from fastapi import APIRouter, Depends, FastAPI, Request, Response

from judge_server.backends import create_backend
from judge_server.backends.base import JudgeBackend
from judge_server.config import JudgeConfig, load_config
from judge_server.metrics import JudgeMetrics
from judge_server.protocol import (
    RewardRequest,
    RewardResponse,
    RubricsResponse,
    ScoreRequest,
    ScoreResponse,
)
from judge_server.rubrics import load_rubrics
from judge_server.serving import REQUEST_LOG_SCHEMA, JudgeService
from services.common import (
    ApiKeyMiddleware,
    BodySizeLimitMiddleware,
    RequestLog,
    health_router,
    install_error_handlers,
    metrics_router,
    new_registry,
    require_api_key,
)
from services.common.metrics import mark_worker_dead

logger = logging.getLogger(__name__)

CONFIG_ENV = "RLAIF_JUDGE_CONFIG"
LOG_LEVEL_ENV = "RLAIF_JUDGE_LOG_LEVEL"


def _request_id(request: Request) -> str:
    return request.headers.get("x-request-id") or uuid.uuid4().hex


def scoring_router(service: JudgeService) -> APIRouter:
    router = APIRouter()

    @router.post("/v1/score", response_model=ScoreResponse)
    async def score(body: ScoreRequest, request: Request) -> ScoreResponse:
        return await service.score(body, _request_id(request))

    @router.post("/get_reward", response_model=RewardResponse)
    async def get_reward(body: RewardRequest, request: Request) -> RewardResponse:
        return await service.get_reward(body, _request_id(request))

    @router.get("/v1/rubrics", response_model=RubricsResponse)
    async def rubrics() -> RubricsResponse:
        return service.list_rubrics()

    return router


def create_app(config: JudgeConfig, backend: JudgeBackend | None = None) -> FastAPI:
    """The judge app; ``backend`` overrides the configured one (tests)."""
    rubrics = load_rubrics(config.rubrics_dir)
    metrics = JudgeMetrics(new_registry())
    request_log = None
    if config.request_log.enabled:
        request_log = RequestLog(
            config.server.log_dir,
            "judge",
            REQUEST_LOG_SCHEMA,
            flush_rows=config.request_log.flush_rows,
            flush_seconds=config.request_log.flush_seconds,
        )
    service = JudgeService(
        config, backend or create_backend(config), rubrics, metrics, request_log
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await service.start()
        try:
            yield
        finally:
            await service.close()
            mark_worker_dead()

    app = FastAPI(title="rlaif judge", lifespan=lifespan)
    app.state.service = service
    install_error_handlers(app)
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=config.server.max_body_bytes)
    _count_requests(app, metrics)
    # Added last, so it runs first: no body is read before the key is checked.
    app.add_middleware(ApiKeyMiddleware, api_key=config.server.api_key_value())
    auth = Depends(require_api_key(config.server.api_key_value()))
    app.include_router(scoring_router(service), dependencies=[auth])
    app.include_router(health_router(lambda: service.ready))
    app.include_router(metrics_router(metrics.registry))
    return app


def _count_requests(app: FastAPI, metrics: JudgeMetrics) -> None:
    """Count and time every request, by route template and status."""

    @app.middleware("http")
    async def observe(request: Request, call_next) -> Response:
        started = time.perf_counter()
        status = 500
        try:
            response = await call_next(request)
            status = response.status_code
            return response
        finally:
            route = request.scope.get("route")
            path = getattr(route, "path", "unmatched")
            seconds = time.perf_counter() - started
            metrics.requests.labels(route=path, status=str(status)).inc()
            metrics.request_latency.labels(route=path).observe(seconds)
            if path not in ("/metrics", "/healthz", "/readyz"):
                logger.info(
                    "%s %s %d %.1fms", request.method, path, status, seconds * 1e3
                )


def app_from_env() -> FastAPI:
    """Factory for uvicorn workers: the config path comes from the env."""
    # Spawned workers do not inherit the CLI's logging setup.
    if not logging.getLogger().handlers:
        logging.basicConfig(
            level=os.environ.get(LOG_LEVEL_ENV, "INFO"),
            format="%(asctime)s %(levelname)s %(process)d %(name)s: %(message)s",
        )
    path = os.environ.get(CONFIG_ENV)
    return create_app(load_config(Path(path) if path else None))
