"""CPU backend: transformers generation with peft LoRA adapters.

One ``PeftModel`` holds every adapter by name. Generation runs in a single
worker thread, one request at a time: the event loop stays free for HTTP
while the model works, and switching adapters never races a generation.

Because the worker is a first-in, first-out queue, adapter loads and
unloads are queued behind the generations admitted before them: a request
in flight always finishes on the adapter it started with, and an unload
returns once those requests are done.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from services.chat.adapters import AdapterInfo, AdapterRegistry, inspect_adapter
from services.chat.backends.base import (
    ChatBackend,
    GenerationDelta,
    GenerationRequest,
)
from services.chat.config import ConfigError
from services.chat.detokenize import IncrementalDetokenizer, StopMatcher
from services.chat.errors import AdapterError, BackendError, OverloadedError

logger = logging.getLogger(__name__)


@dataclass
class _Run:
    """The channel between one generation in the worker and its consumer."""

    loop: asyncio.AbstractEventLoop
    queue: asyncio.Queue[list[int] | _End] = field(default_factory=asyncio.Queue)
    cancel: threading.Event = field(default_factory=threading.Event)

    async def next_tokens(self) -> tuple[list[int], _End | None]:
        """Every token ready now (waiting for one), and the end if it came.

        Taking all that is queued makes one text piece of several tokens
        when the consumer falls behind, instead of one piece per token.
        """
        items = [await self.queue.get()]
        while not self.queue.empty():
            items.append(self.queue.get_nowait())
        ids = [t for item in items if not isinstance(item, _End) for t in item]
        ends = [item for item in items if isinstance(item, _End)]
        return ids, (ends[0] if ends else None)

    def send(self, item: list[int] | _End) -> None:
        """Hand ``item`` to the event loop from the worker thread."""
        try:
            self.loop.call_soon_threadsafe(self.queue.put_nowait, item)
        except RuntimeError:  # the loop is closed: nobody is listening
            self.cancel.set()


@dataclass(frozen=True)
class _End:
    error: BaseException | None = None


class TransformersBackend(ChatBackend):
    """Serve a local Hugging Face causal LM and its LoRA adapters."""

    kind = "transformers"

    def __init__(
        self,
        base: Path,
        registry: AdapterRegistry,
        *,
        device: str = "cpu",
        dtype: str = "float32",
        max_model_len: int | None = None,
        max_pending: int = 64,
        torch_threads: int | None = None,
    ) -> None:
        super().__init__(registry)
        self.base = Path(base)
        self.device = device
        self.dtype = dtype
        self.max_pending = max_pending
        self.torch_threads = torch_threads
        self._requested_len = max_model_len
        self._max_model_len = 0
        self._model: Any = None
        self._tokenizer: Any = None
        self._eos_ids: frozenset[int] = frozenset()
        self._pending = 0
        self._worker = ThreadPoolExecutor(1, thread_name_prefix="chat-generate")

    @property
    def tokenizer(self) -> Any:
        return self._tokenizer

    @property
    def max_model_len(self) -> int:
        return self._max_model_len

    @property
    def model(self) -> Any:
        """The model (a ``PeftModel`` once an adapter is loaded); tests use it."""
        return self._model

    async def start(self, adapters: dict[str, Path]) -> None:
        infos = [self._reserve(name, path) for name, path in adapters.items()]
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._worker, self._load_base)
        for info in infos:
            await loop.run_in_executor(self._worker, self._attach, info)
            self.adapters.commit(info)
        self._ready = True
        logger.info(
            "transformers backend ready: base %s, adapters %s, context %d tokens",
            self.base,
            self.adapters.names(),
            self._max_model_len,
        )

    def generate(self, request: GenerationRequest) -> AsyncIterator[GenerationDelta]:
        if not self._ready:
            raise OverloadedError("the model is still loading: retry shortly")
        if self._pending >= self.max_pending:
            raise OverloadedError(
                f"{self._pending} requests are queued or running "
                f"(max_pending_requests={self.max_pending}): retry later",
                retry_after=2.0,
            )
        run = _Run(loop=asyncio.get_running_loop())
        self._pending += 1
        job = self._worker.submit(self._generate_blocking, request, run)
        job.add_done_callback(lambda done: self._job_done(done, run))
        return self._pieces(request, run)

    async def load_adapter(self, name: str, path: Path) -> AdapterInfo:
        info = self._reserve(name, path)
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self._worker, self._attach, info)
        except BaseException:
            self.adapters.release(name)
            raise
        self.adapters.commit(info)
        logger.info("loaded adapter %r from %s", name, info.path)
        return info

    async def unload_adapter(self, name: str) -> None:
        self.adapters.remove(name)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._worker, self._detach, name)
        logger.info("unloaded adapter %r", name)

    async def close(self) -> None:
        await super().close()
        self._worker.shutdown(wait=True, cancel_futures=True)

    # -- loading, in the worker thread ------------------------------------

    def _reserve(self, name: str, path: Path) -> AdapterInfo:
        self.adapters.reserve(name)
        try:
            return inspect_adapter(name, path)
        except BaseException:
            self.adapters.release(name)
            raise

    def _load_base(self) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if self.torch_threads:
            torch.set_num_threads(self.torch_threads)
        self._tokenizer = AutoTokenizer.from_pretrained(self.base)
        if not getattr(self._tokenizer, "chat_template", None):
            raise ConfigError(
                f"the tokenizer in {str(self.base)!r} has no chat template: save "
                "one with the model (tokenizer.chat_template) before serving it"
            )
        dtype = "auto" if self.dtype == "auto" else getattr(torch, self.dtype)
        model = AutoModelForCausalLM.from_pretrained(self.base, dtype=dtype)
        self._model = model.to(self.device).eval()
        self._eos_ids = _eos_ids(model, self._tokenizer)
        self._max_model_len = _context_length(model.config, self._requested_len)

    def _attach(self, info: AdapterInfo) -> None:
        from peft import PeftModel

        try:
            if isinstance(self._model, PeftModel):
                self._model.load_adapter(str(info.path), adapter_name=info.name)
            else:
                self._model = PeftModel.from_pretrained(
                    self._model, str(info.path), adapter_name=info.name
                )
        except (ValueError, KeyError, RuntimeError, OSError) as exc:
            raise AdapterError(
                f"adapter {info.name!r} from {str(info.path)!r} does not fit the "
                f"base model {str(self.base)!r}: {exc}"
            ) from exc
        self._model.eval()

    def _detach(self, name: str) -> None:
        others = [n for n in self._model.peft_config if n != name]
        if not others:
            # peft cannot disable an adapter-less PeftModel: unwrap the base.
            self._model = self._model.unload()
            return
        if name in self._model.active_adapters:
            # Activate another first: peft warns when the active one goes.
            self._model.set_adapter(others[0])
        self._model.delete_adapter(name)

    # -- generation --------------------------------------------------------

    def _generate_blocking(self, request: GenerationRequest, run: _Run) -> None:
        """Run in the worker: generate, sending token ids as they come."""
        import torch

        if run.cancel.is_set():
            return
        sampling = request.sampling
        if sampling.seed is not None:
            torch.manual_seed(sampling.seed)
        input_ids = torch.tensor([request.prompt_ids], device=self.device)
        with torch.inference_mode(), self._adapter_selected(request.adapter):
            self._model.generate(
                input_ids=input_ids,
                attention_mask=torch.ones_like(input_ids),
                generation_config=self._generation_config(request),
                streamer=_TokenStreamer(run),
                stopping_criteria=_cancellation(run.cancel),
            )

    def _generation_config(self, request: GenerationRequest) -> Any:
        from transformers import GenerationConfig

        sampling = request.sampling
        decoding: dict[str, Any] = {"do_sample": False}
        if not sampling.greedy:
            decoding = {
                "do_sample": True,
                "temperature": sampling.temperature,
                "top_p": sampling.top_p,
                "top_k": 0,
            }
        return GenerationConfig(
            max_new_tokens=sampling.max_tokens,
            eos_token_id=sorted(self._eos_ids),
            pad_token_id=self._tokenizer.pad_token_id,
            bos_token_id=self._tokenizer.bos_token_id,
            **decoding,
        )

    @contextlib.contextmanager
    def _adapter_selected(self, adapter: str | None) -> Iterator[None]:
        from peft import PeftModel

        if not isinstance(self._model, PeftModel):
            yield
        elif adapter is None:
            with self._model.disable_adapter():
                yield
        else:
            self._model.set_adapter(adapter)
            yield

    def _job_done(self, job: Future[None], run: _Run) -> None:
        """Free the queue place, then tell the consumer (in this order, so a
        client that sends its next request at once finds the place free)."""

        def settle() -> None:
            self._pending -= 1

        with contextlib.suppress(RuntimeError):  # the loop is closed
            run.loop.call_soon_threadsafe(settle)
        error = None if job.cancelled() else job.exception()
        run.send(_End(error))

    async def _pieces(
        self, request: GenerationRequest, run: _Run
    ) -> AsyncIterator[GenerationDelta]:
        """Turn the worker's token ids into text pieces, cutting at stops."""
        detokenizer = IncrementalDetokenizer(self._tokenizer)
        stops = StopMatcher(request.sampling.stop)
        unreported = 0
        last_token: int | None = None
        try:
            while True:
                ids, end = await run.next_tokens()
                if ids:
                    unreported += len(ids)
                    last_token = ids[-1]
                text = stops.push(detokenizer.push(ids)) if ids else ""
                if stops.stopped:
                    run.cancel.set()
                    yield GenerationDelta(text, unreported, "stop")
                    return
                if end is not None and end.error is None:
                    break  # the text of this last batch goes with the tail
                if text:
                    yield GenerationDelta(text, unreported)
                    unreported = 0
                if end is not None:
                    raise BackendError(
                        f"generation failed: {type(end.error).__name__}"
                    ) from end.error
            tail = text + stops.push(detokenizer.flush())
            tail += stops.flush()
            ended = stops.stopped or last_token in self._eos_ids
            yield GenerationDelta(tail, unreported, "stop" if ended else "length")
        finally:
            # A client that went away, or a stop sequence: stop the worker.
            run.cancel.set()


class _TokenStreamer:
    """A transformers streamer that forwards new token ids, not the prompt."""

    def __init__(self, run: _Run) -> None:
        self._run = run
        self._prompt_seen = False

    def put(self, value: Any) -> None:
        if not self._prompt_seen:
            self._prompt_seen = True
            return
        self._run.send([int(t) for t in value.reshape(-1).tolist()])

    def end(self) -> None:
        """Nothing to do: the worker's completion marks the end."""


def _cancellation(cancel: threading.Event) -> Any:
    import torch
    from transformers import StoppingCriteria, StoppingCriteriaList

    class Cancelled(StoppingCriteria):
        def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
            return torch.full((input_ids.shape[0],), cancel.is_set(), dtype=torch.bool)

    return StoppingCriteriaList([Cancelled()])


def _eos_ids(model: Any, tokenizer: Any) -> frozenset[int]:
    configured = model.generation_config.eos_token_id
    if configured is None:
        configured = tokenizer.eos_token_id
    if configured is None:
        raise ConfigError(
            "the base model has no EOS token (generation_config.eos_token_id "
            "and tokenizer.eos_token_id are unset): generation could not stop"
        )
    ids = configured if isinstance(configured, list) else [configured]
    return frozenset(int(i) for i in ids)


def _context_length(config: Any, requested: int | None) -> int:
    native = getattr(config, "max_position_embeddings", None)
    if requested is None:
        if native is None:
            raise ConfigError(
                "the base model's config has no max_position_embeddings: set "
                "max_model_len in the chat config"
            )
        return int(native)
    if native is not None and requested > native:
        logger.warning(
            "max_model_len %d exceeds the model's %d positions; using %d",
            requested,
            native,
            native,
        )
        return int(native)
    return requested
