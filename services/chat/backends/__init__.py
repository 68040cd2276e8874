"""Generation backends: transformers + peft (CPU) and vLLM (GPU).

:func:`create_backend` imports the selected one only, so the CPU path never
needs vLLM and ``rlaif --help`` never imports torch.
"""

from __future__ import annotations

from pathlib import Path

from services.chat.adapters import AdapterRegistry
from services.chat.backends.base import (
    ChatBackend,
    GenerationDelta,
    GenerationRequest,
    SamplingSettings,
)
from services.chat.config import ChatSettings

__all__ = [
    "ChatBackend",
    "GenerationDelta",
    "GenerationRequest",
    "SamplingSettings",
    "create_backend",
]


def create_backend(settings: ChatSettings, base: Path) -> ChatBackend:
    """The backend ``settings.backend`` names, for the base model in ``base``."""
    registry = AdapterRegistry(settings.base_name or base.name, settings.max_loras)
    if settings.backend == "vllm":
        from services.chat.backends.vllm_backend import VLLMBackend, import_vllm

        import_vllm()  # fail before anything loads, with the install hint
        return VLLMBackend(base, registry, settings)
    from services.chat.backends.transformers_backend import TransformersBackend

    return TransformersBackend(
        base,
        registry,
        device=settings.device,
        dtype=settings.dtype,
        max_model_len=settings.max_model_len,
        max_pending=settings.max_pending_requests,
        torch_threads=settings.torch_threads,
    )
