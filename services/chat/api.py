"""HTTP routes of the chat service and the app factory.

The routes only translate: JSON in, :class:`ChatServing` call, JSON or
server-sent events out. Errors become OpenAI-style bodies through the
shared handlers of ``services.common``.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import PlainTextResponse, StreamingResponse

from services.chat.backends import ChatBackend
from services.chat.config import ChatSettings
from services.chat.metrics import ChatMetrics
from services.chat.protocol import (
    ChatCompletionRequest,
    ChatCompletionResponse,
    LoadLoRAAdapterRequest,
    ModelList,
    UnloadLoRAAdapterRequest,
)
from services.chat.serving import LOG_SCHEMA, ChatLimits, ChatServing
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

STREAM_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def serving_of(request: Request) -> ChatServing:
    return request.app.state.serving


Serving = Annotated[ChatServing, Depends(serving_of)]
router = APIRouter()


@router.post("/v1/chat/completions", response_model=None)
async def chat_completions(
    body: ChatCompletionRequest, serving: Serving
) -> ChatCompletionResponse | StreamingResponse:
    turn = serving.start_turn(body)
    if body.stream:
        return StreamingResponse(
            serving.stream(turn), media_type="text/event-stream", headers=STREAM_HEADERS
        )
    return await serving.complete(turn)


@router.get("/v1/models")
async def list_models(serving: Serving) -> ModelList:
    return serving.list_models()


@router.post("/v1/load_lora_adapter", response_class=PlainTextResponse)
async def load_lora_adapter(body: LoadLoRAAdapterRequest, serving: Serving) -> str:
    return await serving.load_adapter(body)


@router.post("/v1/unload_lora_adapter", response_class=PlainTextResponse)
async def unload_lora_adapter(body: UnloadLoRAAdapterRequest, serving: Serving) -> str:
    return await serving.unload_adapter(body)


def build_app(
    settings: ChatSettings,
    backend: ChatBackend,
    adapters: dict[str, Path] | None = None,
) -> FastAPI:
    """The chat app; the model and ``adapters`` load during startup."""
    registry = new_registry()
    request_log = None
    if settings.log_requests:
        request_log = RequestLog(
            settings.log_dir,
            "chat",
            LOG_SCHEMA,
            flush_rows=settings.log_flush_rows,
            flush_seconds=settings.log_flush_seconds,
        )
    serving = ChatServing(
        backend,
        ChatMetrics(registry),
        limits=ChatLimits(
            max_tokens_limit=settings.max_tokens_limit,
            default_max_tokens=settings.default_max_tokens,
            default_system_prompt=settings.default_system_prompt,
        ),
        request_log=request_log,
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # The port opens once the model is loaded; a load failure stops the
        # server at startup rather than leaving it up and never ready.
        await serving.start(dict(adapters or {}))
        if request_log is not None:
            await request_log.start()
        try:
            yield
        finally:
            await backend.close()
            if request_log is not None:
                await request_log.close()

    app = FastAPI(title="rlaif chat service", lifespan=lifespan)
    app.state.serving = serving
    app.state.request_log = request_log
    install_error_handlers(app)
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.include_router(
        router, dependencies=[Depends(require_api_key(settings.api_key_value()))]
    )
    app.include_router(health_router(lambda: backend.ready))
    app.include_router(metrics_router(registry))
    # Added last, so it runs first: metrics, docs and unknown paths need the
    # key too, and no body is read before it is checked.
    app.add_middleware(ApiKeyMiddleware, api_key=settings.api_key_value())
    return app
