"""What the serving layer asks of a generation backend.

A backend owns the model, its tokenizer and the adapters loaded into it.
The serving layer renders the chat template and checks lengths itself, so
every backend receives token ids that already fit, and returns text pieces
that are whole characters with stop sequences already cut.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from services.chat.adapters import AdapterInfo, AdapterRegistry


@dataclass(frozen=True, kw_only=True)
class SamplingSettings:
    """Decoding of one request; temperature 0 means greedy."""

    max_tokens: int
    temperature: float = 1.0
    top_p: float = 1.0
    stop: tuple[str, ...] = ()
    seed: int | None = None

    @property
    def greedy(self) -> bool:
        return self.temperature < 1e-5


@dataclass(frozen=True, kw_only=True)
class GenerationRequest:
    request_id: str
    prompt_ids: list[int]
    adapter: str | None
    sampling: SamplingSettings


@dataclass(frozen=True)
class GenerationDelta:
    """New text and how many tokens produced it; the last one has a reason."""

    text: str
    num_tokens: int
    finish_reason: str | None = None


class ChatBackend(abc.ABC):
    """A model that generates for chat requests, with hot-swappable adapters."""

    #: short name for logs and metrics ("transformers", "vllm")
    kind: str = "backend"

    def __init__(self, registry: AdapterRegistry) -> None:
        self.adapters = registry
        self._ready = False

    @property
    def ready(self) -> bool:
        """True once :meth:`start` finished: the model can take requests."""
        return self._ready

    @property
    def base_available(self) -> bool:
        """False when the engine runs merged weights, not the plain base."""
        return True

    @property
    @abc.abstractmethod
    def tokenizer(self) -> Any:
        """The base model's Hugging Face tokenizer (chat template included)."""

    @property
    @abc.abstractmethod
    def max_model_len(self) -> int:
        """Context length in tokens: prompt and completion together."""

    @abc.abstractmethod
    async def start(self, adapters: dict[str, Path]) -> None:
        """Load the model and the startup adapters; set :attr:`ready`."""

    @abc.abstractmethod
    def generate(self, request: GenerationRequest) -> AsyncIterator[GenerationDelta]:
        """Start generating now; iterate for the pieces.

        Implementations must take the request (queue it or submit it to
        the engine) before returning, not at the first iteration: the
        serving layer relies on that to keep a request on the adapter it
        was admitted with while an unload waits behind it.
        """

    @abc.abstractmethod
    async def load_adapter(self, name: str, path: Path) -> AdapterInfo:
        """Load an adapter while serving; it is selectable once this returns."""

    @abc.abstractmethod
    async def unload_adapter(self, name: str) -> None:
        """Stop selecting ``name`` now; free it once requests on it are done."""

    async def close(self) -> None:
        """Release the model; the default has nothing to release."""
        self._ready = False
