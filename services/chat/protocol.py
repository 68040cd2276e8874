"""Request and response bodies of the OpenAI-compatible chat API.

Only the fields this service honours are declared; anything else an OpenAI
client sends is kept (``extra="allow"``) so the serving layer can warn that
it was ignored instead of refusing the request.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

Role = Literal["system", "user", "assistant"]
FinishReason = Literal["stop", "length"]


def _encodable(text: str) -> str:
    """Refuse unpaired surrogates (issue 8).

    A JSON escape such as ``"\\ud800"`` parses into a Python string that
    the tokenizer cannot encode: a 500 before this check, now a 400.
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(
            f"text has an unpaired surrogate at position {exc.start}: send valid "
            "UTF-8 (escape astral characters as a surrogate pair)"
        ) from None
    return text


class TextPart(BaseModel):
    """One part of a message in the list form of ``content``."""

    type: Literal["text"]
    text: str

    @field_validator("text")
    @classmethod
    def _text_is_encodable(cls, value: str) -> str:
        return _encodable(value)


class ChatMessage(BaseModel):
    """A turn of the conversation; the chat template knows these roles only."""

    model_config = ConfigDict(extra="ignore")

    role: Role
    content: str | list[TextPart]

    @field_validator("content")
    @classmethod
    def _content_is_encodable(cls, value: str | list[TextPart]) -> Any:
        return _encodable(value) if isinstance(value, str) else value

    def text(self) -> str:
        """The content as one string (list parts are joined)."""
        if isinstance(self.content, str):
            return self.content
        return "".join(part.text for part in self.content)


class StreamOptions(BaseModel):
    include_usage: bool = False


class ChatCompletionRequest(BaseModel):
    """``POST /v1/chat/completions``."""

    model_config = ConfigDict(extra="allow")

    model: str
    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    temperature: float = Field(1.0, ge=0.0, le=2.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    stop: str | list[str] | None = None
    seed: int | None = None
    n: int = Field(1, ge=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    user: str | None = None

    @field_validator("stop")
    @classmethod
    def _at_most_four_stops(cls, value: str | list[str] | None) -> list[str] | None:
        stops = [value] if isinstance(value, str) else value
        if stops is None:
            return None
        if len(stops) > 4 or any(not s for s in stops):
            raise ValueError("give at most 4 stop sequences, none of them empty")
        return stops

    def requested_max_tokens(self) -> int | None:
        """``max_completion_tokens`` (the newer name) wins over ``max_tokens``."""
        return self.max_completion_tokens or self.max_tokens

    def ignored_fields(self) -> list[str]:
        """Fields the client set that this service does not implement."""
        return sorted((self.model_extra or {}).keys())


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class Choice(BaseModel):
    index: int = 0
    message: AssistantMessage
    finish_reason: FinishReason | None
    logprobs: None = None


def completion_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex}"


class ChatCompletionResponse(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int = Field(default_factory=lambda: int(time.time()))
    model: str
    choices: list[Choice]
    usage: Usage


class DeltaMessage(BaseModel):
    role: Literal["assistant"] | None = None
    content: str | None = None


class ChunkChoice(BaseModel):
    index: int = 0
    delta: DeltaMessage
    finish_reason: FinishReason | None = None
    logprobs: None = None


class ChatCompletionChunk(BaseModel):
    """One server-sent event of a streamed completion."""

    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int = Field(default_factory=lambda: int(time.time()))
    model: str
    choices: list[ChunkChoice]
    usage: Usage | None = None


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int = Field(default_factory=lambda: int(time.time()))
    owned_by: str = "rlaif"
    root: str
    parent: str | None = None


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class LoadLoRAAdapterRequest(BaseModel):
    """``POST /v1/load_lora_adapter``, the body vLLM's server takes."""

    lora_name: str = Field(min_length=1, max_length=128, pattern=r"^[\w.\-/]+$")
    lora_path: str = Field(min_length=1)


class UnloadLoRAAdapterRequest(BaseModel):
    """``POST /v1/unload_lora_adapter``; vLLM also accepts ``lora_int_id``."""

    lora_name: str = Field(min_length=1)
    lora_int_id: int | None = None


def sse_event(payload: BaseModel | dict[str, Any]) -> str:
    """One ``data:`` event of a server-sent event stream."""
    if isinstance(payload, BaseModel):
        data = payload.model_dump_json(exclude_none=False)
    else:
        data = json.dumps(payload, ensure_ascii=False)
    return f"data: {data}\n\n"


SSE_DONE = "data: [DONE]\n\n"
