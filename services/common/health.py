"""Liveness and readiness routes shared by the services.

``/healthz`` answers 200 as long as the process serves HTTP; ``/readyz``
answers 200 only once the readiness callable says the backend can take work
(a model still loading gives 503), so a load balancer or docker compose
waits for it before sending traffic.
"""

from __future__ import annotations

from collections.abc import Callable

from fastapi import APIRouter
from fastapi.responses import JSONResponse


def health_router(is_ready: Callable[[], bool]) -> APIRouter:
    """``GET /healthz`` and ``GET /readyz``; ``is_ready`` must be cheap."""
    router = APIRouter(tags=["health"])

    @router.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.get("/readyz")
    async def readyz() -> JSONResponse:
        if is_ready():
            return JSONResponse({"status": "ready"})
        return JSONResponse({"status": "not ready"}, status_code=503)

    return router
