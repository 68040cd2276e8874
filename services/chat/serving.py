"""Chat completions without HTTP: validate, render, generate, account.

:class:`ChatServing` turns an OpenAI request into token ids with the base
model's chat template, checks it against the limits, hands it to the
backend, and assembles the reply as one response or as stream chunks.
Every finished turn, successful or not, gets one metrics update and one
request-log row. The routes in ``api.py`` only translate to HTTP.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pyarrow as pa

from services.chat.backends.base import (
    ChatBackend,
    GenerationDelta,
    GenerationRequest,
    SamplingSettings,
)
from services.chat.errors import (
    BadRequestError,
    ContextLengthError,
    ServiceError,
    UnknownModelError,
)
from services.chat.metrics import UNKNOWN_MODEL, ChatMetrics
from services.chat.protocol import (
    SSE_DONE,
    AssistantMessage,
    ChatCompletionChunk,
    ChatCompletionRequest,
    ChatCompletionResponse,
    ChatMessage,
    Choice,
    ChunkChoice,
    DeltaMessage,
    LoadLoRAAdapterRequest,
    ModelCard,
    ModelList,
    UnloadLoRAAdapterRequest,
    Usage,
    completion_id,
    sse_event,
)
from services.common.errors import error_body
from services.common.request_log import RequestLog

logger = logging.getLogger(__name__)

LOG_SCHEMA = pa.schema(
    [
        ("ts", pa.timestamp("us", tz="UTC")),
        ("request_id", pa.string()),
        ("model", pa.string()),
        ("adapter", pa.string()),
        (
            "messages",
            pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())])),
        ),
        ("reply", pa.string()),
        ("prompt_tokens", pa.int32()),
        ("completion_tokens", pa.int32()),
        ("latency_s", pa.float64()),
        ("ttft_s", pa.float64()),
        ("finish_reason", pa.string()),
        ("stream", pa.bool_()),
        ("status", pa.int32()),
        ("error", pa.string()),
    ]
)


@dataclass(frozen=True, kw_only=True)
class ChatLimits:
    """Per-request bounds the operator sets in the config."""

    max_tokens_limit: int = 512
    default_max_tokens: int = 256
    # Prepended as the first turn when a request brings no system message:
    # a model tuned under a system prompt answers best under the same one.
    default_system_prompt: str | None = None


@dataclass
class ChatTurn:
    """One admitted request: its prompt, its running generation, its tally."""

    id: str
    model: str
    adapter: str | None
    request: ChatCompletionRequest
    prompt_ids: list[int]
    pieces: AsyncIterator[GenerationDelta]
    started: float = field(default_factory=time.perf_counter)
    created: int = field(default_factory=lambda: int(time.time()))
    first_token_at: float | None = None
    completion_tokens: int = 0
    finish_reason: str | None = None
    text: list[str] = field(default_factory=list)
    settled: bool = False

    def take(self, delta: GenerationDelta) -> None:
        if delta.num_tokens and self.first_token_at is None:
            self.first_token_at = time.perf_counter()
        self.completion_tokens += delta.num_tokens
        self.text.append(delta.text)
        if delta.finish_reason is not None:
            self.finish_reason = delta.finish_reason

    def usage(self) -> Usage:
        prompt = len(self.prompt_ids)
        return Usage(
            prompt_tokens=prompt,
            completion_tokens=self.completion_tokens,
            total_tokens=prompt + self.completion_tokens,
        )


def encode_chat(tokenizer: Any, messages: Sequence[ChatMessage]) -> list[int]:
    """Token ids of ``messages`` under the chat template, with one BOS.

    Templates that write the BOS themselves (Llama, ours) would get a second
    one if the text were tokenized with special tokens; templates that do
    not write it get it added when the tokenizer normally adds one.
    """
    turns = [{"role": m.role, "content": m.text()} for m in messages]
    text = tokenizer.apply_chat_template(
        turns, add_generation_prompt=True, tokenize=False
    )
    ids = list(tokenizer(text, add_special_tokens=False)["input_ids"])
    bos = tokenizer.bos_token_id
    if bos is None:
        return ids
    if ids[:1] != [bos] and bos in tokenizer("", add_special_tokens=True)["input_ids"]:
        ids.insert(0, bos)
    while ids[:2] == [bos, bos]:
        ids.pop(0)
    return ids


class ChatServing:
    """The chat API's behaviour, over any :class:`ChatBackend`."""

    def __init__(
        self,
        backend: ChatBackend,
        metrics: ChatMetrics,
        *,
        limits: ChatLimits | None = None,
        request_log: RequestLog | None = None,
    ) -> None:
        self.backend = backend
        self.metrics = metrics
        self.limits = limits or ChatLimits()
        self.request_log = request_log

    @property
    def base_name(self) -> str:
        return self.backend.adapters.base_name

    async def start(self, adapters: dict[str, Path]) -> None:
        await self.backend.start(adapters)
        for name in self.backend.adapters.names():
            self.metrics.adapter_loaded.labels(name).set(1)

    def list_models(self) -> ModelList:
        base = self.base_name
        cards = []
        if self.backend.base_available:
            cards.append(ModelCard(id=base, root=base))
        for info in self.backend.adapters.all():
            cards.append(ModelCard(id=info.name, root=str(info.path), parent=base))
        return ModelList(data=cards)

    # -- admission ---------------------------------------------------------

    def _with_system_prompt(
        self, messages: Sequence[ChatMessage]
    ) -> Sequence[ChatMessage]:
        system = self.limits.default_system_prompt
        if system is None or any(m.role == "system" for m in messages):
            return messages
        return [ChatMessage(role="system", content=system), *messages]

    def start_turn(self, request: ChatCompletionRequest) -> ChatTurn:
        """Check ``request`` and start generating; raises ServiceError.

        Synchronous on purpose: between resolving the adapter and handing
        the request to the backend the event loop runs nothing else, so an
        unload cannot slip in between (see ``ChatBackend.generate``).
        """
        try:
            adapter = self.backend.adapters.resolve(
                request.model, base_available=self.backend.base_available
            )
            self._refuse_unsupported(request)
            prompt_ids = encode_chat(
                self.backend.tokenizer, self._with_system_prompt(request.messages)
            )
            sampling = self._sampling(request, len(prompt_ids))
            turn_id = completion_id()
            pieces = self.backend.generate(
                GenerationRequest(
                    request_id=turn_id,
                    prompt_ids=prompt_ids,
                    adapter=adapter,
                    sampling=sampling,
                )
            )
        except ServiceError as exc:
            model = UNKNOWN_MODEL if isinstance(exc, UnknownModelError) else None
            self.metrics.requests.labels(model or request.model, exc.status_code).inc()
            raise
        self.metrics.in_flight.inc()
        self.metrics.adapter_in_use.labels(adapter or "").inc()
        return ChatTurn(
            id=turn_id,
            model=request.model,
            adapter=adapter,
            request=request,
            prompt_ids=prompt_ids,
            pieces=pieces,
        )

    def _refuse_unsupported(self, request: ChatCompletionRequest) -> None:
        if request.n != 1:
            raise BadRequestError(
                f"n={request.n} is not supported by this service: ask for n=1 "
                "and send several requests (with different seeds) instead"
            )
        ignored = request.ignored_fields()
        if ignored:
            logger.warning("ignoring request fields this service lacks: %s", ignored)

    def _sampling(
        self, request: ChatCompletionRequest, prompt_len: int
    ) -> SamplingSettings:
        context = self.backend.max_model_len
        room = context - prompt_len
        if room <= 0:
            raise ContextLengthError(
                f"the messages take {prompt_len} tokens but the model's context "
                f"is {context} tokens: shorten the messages or drop earlier turns"
            )
        asked = request.requested_max_tokens()
        limit = self.limits.max_tokens_limit
        if asked is not None and asked > limit:
            raise BadRequestError(
                f"max_tokens={asked} exceeds this service's limit of {limit}: "
                f"ask for at most {limit} tokens"
            )
        if asked is not None and asked > room:
            raise ContextLengthError(
                f"this model's maximum context length is {context} tokens, but "
                f"{prompt_len + asked} were requested ({prompt_len} in the "
                f"messages, {asked} in the completion): set max_tokens to at "
                f"most {room} or shorten the messages"
            )
        return SamplingSettings(
            max_tokens=asked
            if asked is not None
            else min(self.limits.default_max_tokens, room),
            temperature=request.temperature,
            top_p=request.top_p,
            stop=tuple(request.stop or ()),
            seed=request.seed,
        )

    # -- answering ---------------------------------------------------------

    async def complete(self, turn: ChatTurn) -> ChatCompletionResponse:
        """Collect the whole reply as one response body."""
        try:
            async for delta in turn.pieces:
                turn.take(delta)
        except ServiceError as exc:
            self._settle(turn, exc)
            raise
        finally:
            if not turn.settled and turn.finish_reason is not None:
                self._settle(turn, None)
            elif not turn.settled:  # the client went away: stop generating
                self._settle(turn, _cancelled())
                await _close(turn.pieces)
        return ChatCompletionResponse(
            id=turn.id,
            created=turn.created,
            model=turn.model,
            choices=[
                Choice(
                    message=AssistantMessage(content="".join(turn.text)),
                    finish_reason=turn.finish_reason,
                )
            ],
            usage=turn.usage(),
        )

    async def stream(self, turn: ChatTurn) -> AsyncIterator[str]:
        """Server-sent events of the reply, ending with ``[DONE]``.

        An error after the first event cannot change the HTTP status any
        more, so it is sent as a last event with an OpenAI error body (the
        ``openai`` client raises it as ``APIError``), then ``[DONE]``.
        """
        yield sse_event(self._chunk(turn, DeltaMessage(role="assistant", content="")))
        try:
            async for delta in turn.pieces:
                turn.take(delta)
                if delta.text:
                    yield sse_event(self._chunk(turn, DeltaMessage(content=delta.text)))
            yield sse_event(self._chunk(turn, DeltaMessage(), turn.finish_reason))
            options = turn.request.stream_options
            if options is not None and options.include_usage:
                yield sse_event(
                    ChatCompletionChunk(
                        id=turn.id,
                        created=turn.created,
                        model=turn.model,
                        choices=[],
                        usage=turn.usage(),
                    )
                )
            self._settle(turn, None)
        except ServiceError as exc:
            self._settle(turn, exc)
            yield sse_event(error_body(exc.message, exc.error_type, exc.status_code))
        except Exception as exc:
            logger.exception("stream %s failed", turn.id)
            self._settle(turn, exc)
            yield sse_event(
                error_body(
                    "internal error while generating; the server log has the details",
                    "internal_error",
                    500,
                )
            )
        finally:
            if not turn.settled:  # the client went away mid-stream
                self._settle(turn, _cancelled())
                await _close(turn.pieces)
        yield SSE_DONE

    def _chunk(
        self, turn: ChatTurn, delta: DeltaMessage, finish: str | None = None
    ) -> ChatCompletionChunk:
        return ChatCompletionChunk(
            id=turn.id,
            created=turn.created,
            model=turn.model,
            choices=[ChunkChoice(delta=delta, finish_reason=finish)],
        )

    # -- accounting ----------------------------------------------------------

    def _settle(self, turn: ChatTurn, error: BaseException | None) -> None:
        """Count the finished turn once: metrics, one log line, one row."""
        turn.settled = True
        now = time.perf_counter()
        latency = now - turn.started
        ttft = (
            None if turn.first_token_at is None else turn.first_token_at - turn.started
        )
        status = _status_of(error)
        metrics = self.metrics
        metrics.in_flight.dec()
        metrics.adapter_in_use.labels(turn.adapter or "").dec()
        metrics.requests.labels(turn.model, status).inc()
        metrics.latency.labels(turn.model).observe(latency)
        if ttft is not None:
            metrics.ttft.labels(turn.model).observe(ttft)
        metrics.generated_tokens.labels(turn.model).inc(turn.completion_tokens)
        metrics.prompt_tokens.labels(turn.model).inc(len(turn.prompt_ids))
        logger.info(
            "chat %s model=%s status=%d prompt=%d completion=%d finish=%s %.3fs",
            turn.id,
            turn.model,
            status,
            len(turn.prompt_ids),
            turn.completion_tokens,
            turn.finish_reason,
            latency,
        )
        if self.request_log is not None:
            self.request_log.append(self._log_row(turn, latency, ttft, status, error))

    def _log_row(
        self,
        turn: ChatTurn,
        latency: float,
        ttft: float | None,
        status: int,
        error: BaseException | None,
    ) -> dict[str, Any]:
        return {
            "ts": datetime.now(timezone.utc),
            "request_id": turn.id,
            "model": turn.model,
            "adapter": turn.adapter,
            "messages": [
                {"role": m.role, "content": m.text()} for m in turn.request.messages
            ],
            "reply": "".join(turn.text),
            "prompt_tokens": len(turn.prompt_ids),
            "completion_tokens": turn.completion_tokens,
            "latency_s": latency,
            "ttft_s": ttft,
            "finish_reason": turn.finish_reason,
            "stream": turn.request.stream,
            "status": status,
            "error": None if error is None else _error_text(error),
        }

    # -- adapters ------------------------------------------------------------

    async def load_adapter(self, body: LoadLoRAAdapterRequest) -> str:
        info = await self.backend.load_adapter(body.lora_name, Path(body.lora_path))
        self.metrics.adapter_loaded.labels(info.name).set(1)
        return f"Success: LoRA adapter '{info.name}' added successfully."

    async def unload_adapter(self, body: UnloadLoRAAdapterRequest) -> str:
        await self.backend.unload_adapter(body.lora_name)
        self.metrics.adapter_loaded.labels(body.lora_name).set(0)
        return f"Success: LoRA adapter '{body.lora_name}' removed successfully."


class _ClientGone(Exception):
    """Marks a turn whose client disconnected before the reply was done."""


def _cancelled() -> _ClientGone:
    return _ClientGone("client disconnected before the reply was complete")


# 499: the status nginx uses for "client closed the request".
def _status_of(error: BaseException | None) -> int:
    if error is None:
        return 200
    if isinstance(error, _ClientGone):
        return 499
    if isinstance(error, ServiceError):
        return error.status_code
    return 500


def _error_text(error: BaseException) -> str:
    if isinstance(error, ServiceError):
        return error.message
    if isinstance(error, _ClientGone):
        return str(error)
    return f"internal error ({type(error).__name__})"


async def _close(pieces: AsyncIterator[GenerationDelta]) -> None:
    closer = getattr(pieces, "aclose", None)
    if closer is not None:
        await closer()
