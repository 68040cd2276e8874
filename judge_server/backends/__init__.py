"""Judge backends, imported lazily by name so that only the selected one's
dependencies (vLLM, torch, sentence-transformers) are loaded."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from judge_server.backends.base import JudgeBackend
    from judge_server.config import JudgeConfig


def create_backend(config: JudgeConfig) -> JudgeBackend:
    """The backend named by ``config.backend``, configured but not started."""
    if config.backend == "embedding":
        from judge_server.backends.embedding import EmbeddingBackend

        return EmbeddingBackend(config.embedding)
    if config.backend == "transformers":
        from judge_server.backends.transformers_backend import TransformersBackend

        return TransformersBackend(config.require("transformers"))
    if config.backend == "openai":
        from judge_server.backends.openai_backend import OpenAIBackend

        return OpenAIBackend(config.require("openai"))
    if config.backend == "vllm":
        from judge_server.backends.vllm_backend import VLLMBackend

        return VLLMBackend(config.require("vllm"))
    raise ValueError(f"unknown backend {config.backend!r}")
