"""GPU backend: vLLM's ``AsyncLLM`` engine with LoRA requests.

vLLM batches concurrent requests on the GPU and applies each request's
adapter inside the batch, so requests on different adapters run together.
Adapters travel with each request as a ``LoRARequest``; the engine caches
up to ``max_loras`` of them on the GPU. ``max_lora_rank`` is fixed when the
engine starts, so it is read from the startup adapters' configs (or the
config) and a later, larger adapter is refused with the fix.

vLLM is an optional dependency (``pip install -e .[gpu]``), imported only
when this backend is selected.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from services.chat.adapters import (
    AdapterInfo,
    AdapterRegistry,
    inspect_adapter,
    vllm_problem,
)
from services.chat.backends.base import (
    ChatBackend,
    GenerationDelta,
    GenerationRequest,
)
from services.chat.config import ChatSettings, vllm_rank_for
from services.chat.errors import AdapterError, BackendError, OverloadedError

logger = logging.getLogger(__name__)


def import_vllm() -> Any:
    """The ``vllm`` module, or an ImportError that says how to install it."""
    try:
        import vllm
    except ImportError as exc:
        raise ImportError(
            "the vllm chat backend needs vLLM, which is not installed: run "
            "`pip install -e .[gpu]` on a machine with a CUDA GPU, or set "
            "backend: transformers in the chat config"
        ) from exc
    return vllm


class VLLMBackend(ChatBackend):
    """Serve a base model and LoRA adapters with vLLM."""

    kind = "vllm"

    def __init__(self, base: Path, registry: AdapterRegistry, settings: ChatSettings):
        super().__init__(registry)
        self.base = Path(base)
        self.settings = settings
        self._engine: Any = None
        self._tokenizer: Any = None
        self._max_model_len = 0
        self._max_lora_rank = 0
        self._serving_merged = False
        self._lora_ids = itertools.count(1)
        self._lora_requests: dict[str, Any] = {}
        self._in_flight: dict[str, int] = {}
        self._retiring: set[str] = set()

    @property
    def tokenizer(self) -> Any:
        return self._tokenizer

    @property
    def max_model_len(self) -> int:
        return self._max_model_len

    @property
    def base_available(self) -> bool:
        return not self._serving_merged

    async def start(self, adapters: dict[str, Path]) -> None:
        infos = [self._inspect(name, path) for name, path in adapters.items()]
        model_dir, lora_infos = self._plan(infos)
        self._max_lora_rank = self._rank_to_reserve(lora_infos)
        self._engine = self._create_engine(model_dir)
        from transformers import AutoTokenizer

        self._tokenizer = AutoTokenizer.from_pretrained(model_dir)
        self._max_model_len = int(self._engine.model_config.max_model_len)
        for info in infos:
            if not info.merged:
                await self._register(info)
            self.adapters.commit(info)
        self._ready = True
        logger.info(
            "vllm backend ready: model %s, adapters %s, max_lora_rank %d",
            model_dir,
            self.adapters.names(),
            self._max_lora_rank,
        )

    def generate(self, request: GenerationRequest) -> AsyncIterator[GenerationDelta]:
        if not self._ready:
            raise OverloadedError("the model is still loading: retry shortly")
        lora = None
        if request.adapter is not None and request.adapter in self._lora_requests:
            # Resolved now, not at the first iteration: an unload that
            # starts later leaves this request on its adapter.
            lora = self._lora_requests[request.adapter]
        return self._pieces(request, lora)

    async def load_adapter(self, name: str, path: Path) -> AdapterInfo:
        info = self._inspect(name, path)
        try:
            problem = vllm_problem(info)
            if problem is not None:
                raise AdapterError(
                    f"{problem}: merge it with `rlaif chat merge` and serve the "
                    "merged folder as the base instead"
                )
            if info.rank > self._max_lora_rank:
                raise AdapterError(
                    f"adapter {name!r} has rank {info.rank} but the engine "
                    f"started with max_lora_rank={self._max_lora_rank}: restart "
                    f"with max_lora_rank: {vllm_rank_for(info.rank)} in the config"
                )
            await self._register(info)
        except BaseException:
            self.adapters.release(name)
            raise
        self.adapters.commit(info)
        return info

    async def unload_adapter(self, name: str) -> None:
        self.adapters.remove(name)
        if self._in_flight.get(name, 0):
            self._retiring.add(name)  # freed when its last request ends
        else:
            await self._forget(name)

    async def close(self) -> None:
        await super().close()
        if self._engine is not None:
            self._engine.shutdown()
            self._engine = None

    # -- startup -------------------------------------------------------------

    def _inspect(self, name: str, path: Path) -> AdapterInfo:
        self.adapters.reserve(name)
        try:
            return inspect_adapter(name, path)
        except BaseException:
            self.adapters.release(name)
            raise

    def _plan(self, infos: list[AdapterInfo]) -> tuple[Path, list[AdapterInfo]]:
        """The weights to load, merging the one adapter vLLM cannot serve."""
        problems = {i.name: p for i in infos if (p := vllm_problem(i)) is not None}
        if not problems:
            return self.base, infos
        if self.settings.unservable_adapter == "refuse":
            raise AdapterError(
                "; ".join(problems.values())
                + ": set unservable_adapter: merge to serve it merged, or "
                "retrain without modules_to_save"
            )
        if len(infos) > 1:
            raise AdapterError(
                "; ".join(problems.values())
                + ": an adapter is served merged only when it is the only "
                "adapter (the merged weights replace the base); serve it alone"
            )
        from services.chat.merge import merge_adapter

        info = infos[0]
        out = self.settings.merged_dir / info.name
        logger.warning("%s: serving it merged from %s", problems[info.name], out)
        merge_adapter(self.base, info.path, out)
        infos[0] = dataclasses.replace(info, merged=True)
        self._serving_merged = True
        return out, []

    def _rank_to_reserve(self, infos: list[AdapterInfo]) -> int:
        largest = max((i.rank for i in infos), default=0)
        configured = self.settings.max_lora_rank or 0
        return vllm_rank_for(max(largest, configured, 8))

    def _create_engine(self, model_dir: Path) -> Any:
        import_vllm()
        from vllm.engine.arg_utils import AsyncEngineArgs
        from vllm.v1.engine.async_llm import AsyncLLM

        settings = self.settings
        args = AsyncEngineArgs(
            model=str(model_dir),
            tokenizer=str(model_dir),
            dtype=settings.dtype,
            max_model_len=settings.max_model_len,
            gpu_memory_utilization=settings.gpu_memory_utilization,
            tensor_parallel_size=settings.tensor_parallel_size,
            load_format=settings.load_format,
            enable_lora=not self._serving_merged,
            max_loras=settings.max_loras,
            max_lora_rank=self._max_lora_rank,
            max_cpu_loras=max(settings.max_loras, 2 * settings.max_loras),
        )
        return AsyncLLM.from_engine_args(args)

    async def _register(self, info: AdapterInfo) -> None:
        from vllm.lora.request import LoRARequest

        request = LoRARequest(info.name, next(self._lora_ids), str(info.path))
        # Loading now surfaces a broken adapter at load time, not at the
        # first request that names it.
        await self._engine.add_lora(request)
        self._lora_requests[info.name] = request

    async def _forget(self, name: str) -> None:
        request = self._lora_requests.pop(name, None)
        self._retiring.discard(name)
        if request is not None:
            await self._engine.remove_lora(request.lora_int_id)

    # -- generation ------------------------------------------------------------

    async def _pieces(
        self, request: GenerationRequest, lora: Any
    ) -> AsyncIterator[GenerationDelta]:
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt
        from vllm.sampling_params import RequestOutputKind

        sampling = request.sampling
        params = SamplingParams(
            max_tokens=sampling.max_tokens,
            temperature=sampling.temperature,
            top_p=sampling.top_p,
            stop=list(sampling.stop) or None,
            seed=sampling.seed,
            output_kind=RequestOutputKind.DELTA,
            skip_special_tokens=True,
        )
        name = request.adapter
        if name is not None:
            self._in_flight[name] = self._in_flight.get(name, 0) + 1
        try:
            async for output in self._engine.generate(
                TokensPrompt(prompt_token_ids=request.prompt_ids),
                params,
                request.request_id,
                lora_request=lora,
            ):
                completion = output.outputs[0]
                finish = completion.finish_reason if output.finished else None
                yield GenerationDelta(
                    completion.text, len(completion.token_ids), _finish(finish)
                )
        except (ValueError, RuntimeError) as exc:
            raise BackendError(f"vLLM failed: {type(exc).__name__}: {exc}") from exc
        finally:
            if name is not None:
                self._in_flight[name] -= 1
                if not self._in_flight[name] and name in self._retiring:
                    await self._forget(name)


def _finish(reason: str | None) -> str | None:
    """vLLM's finish reasons mapped to OpenAI's ("abort" ends as "stop")."""
    if reason is None:
        return None
    return "length" if reason == "length" else "stop"
