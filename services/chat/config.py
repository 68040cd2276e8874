"""Settings of the chat service: a YAML file and flags, over the environment.

``configs/chat/cpu.yaml`` serves the tiny bootstrapped policy with
transformers + peft; ``configs/chat/vllm.yaml`` serves a real model with
vLLM. A field the file and the flags leave unset can come from
``RLAIF_CHAT_<FIELD>``: the API key belongs there (``RLAIF_CHAT_API_KEY``),
never in a file or on a command line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, ValidationError, model_validator
from pydantic_settings import SettingsConfigDict

from services.common.settings import ServiceSettings

# vLLM's LoRA kernels exist only for these ranks; a larger adapter rank is
# served with the next one up.
VLLM_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)


class ConfigError(ValueError):
    """A config file or value that cannot be used; the message says the fix."""


class ChatSettings(ServiceSettings):
    """Everything ``rlaif chat serve`` needs besides the adapters themselves."""

    model_config = SettingsConfigDict(env_prefix="RLAIF_CHAT_", extra="forbid")

    backend: Literal["transformers", "vllm"] = Field(
        "transformers", description="transformers + peft (CPU) or vLLM (GPU)."
    )
    base: Path | None = Field(
        None,
        description="Base model folder; --base overrides it. When unset, the "
        "first adapter's base_model_name_or_path is used.",
    )
    base_name: str | None = Field(
        None, description="Model name of the base in the API (default: folder name)."
    )
    max_model_len: int | None = Field(
        None, gt=0, description="Context in tokens (default: the model's own)."
    )
    max_tokens_limit: int = Field(
        512, gt=0, description="Largest max_tokens a request may ask for (400 above)."
    )
    default_max_tokens: int = Field(
        256, gt=0, description="max_tokens of a request that sets none."
    )
    default_system_prompt: str | None = Field(
        None,
        description="System turn prepended when a request has none; set it to "
        "the system prompt the adapter was trained under.",
    )
    max_pending_requests: int = Field(
        64, gt=0, description="Requests queued or running before 503 answers."
    )
    max_loras: int = Field(8, gt=0, description="Adapters loaded at the same time.")
    max_lora_rank: int | None = Field(
        None,
        gt=0,
        description="vLLM only: rank the engine reserves (default: the largest "
        "startup adapter's); raise it to hot-load adapters of higher rank.",
    )
    unservable_adapter: Literal["merge", "refuse"] = Field(
        "merge",
        description="vLLM only: an adapter vLLM cannot serve as LoRA (saved "
        "lm_head/embed_tokens, DoRA) is merged into the base, or refused.",
    )
    merged_dir: Path = Field(
        Path("runs/chat-merged"), description="Where merged adapters are written."
    )
    device: str = Field("cpu", description="transformers only: torch device.")
    dtype: Literal["float32", "bfloat16", "float16", "auto"] = Field(
        "float32", description="Weights dtype (auto: the checkpoint's)."
    )
    torch_threads: int | None = Field(
        None, gt=0, description="transformers only: torch.set_num_threads."
    )
    gpu_memory_utilization: float = Field(0.85, gt=0, le=1, description="vLLM only.")
    tensor_parallel_size: int = Field(1, gt=0, description="vLLM only.")
    load_format: str = Field(
        "auto", description="vLLM only: 'dummy' for random weights (benchmarks)."
    )
    log_flush_rows: int = Field(64, gt=0, description="Request-log rows per file.")
    log_flush_seconds: float = Field(
        5.0, gt=0, description="Longest wait before logged rows reach disk."
    )
    log_requests: bool = Field(
        True, description="Write the Parquet request log under log_dir/chat/."
    )

    @model_validator(mode="after")
    def _default_fits_limit(self) -> ChatSettings:
        if self.default_max_tokens > self.max_tokens_limit:
            raise ValueError(
                f"default_max_tokens={self.default_max_tokens} exceeds "
                f"max_tokens_limit={self.max_tokens_limit}: lower the default "
                "or raise the limit"
            )
        return self


def load_settings(path: Path | None, **overrides: Any) -> ChatSettings:
    """Read ``path`` (YAML), then apply the non-None ``overrides`` on top."""
    values: dict[str, Any] = {}
    if path is not None:
        values = _read_yaml(Path(path))
    values.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return ChatSettings(**values)
    except ValidationError as exc:
        source = f"config {path}" if path else "chat settings"
        raise ConfigError(f"{source} is invalid: {exc}") from exc


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(
            f"chat config {str(path)!r} does not exist: pass --config "
            "configs/chat/cpu.yaml or a file of your own"
        )
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"chat config {str(path)!r} must be a mapping of field: value, "
            f"got {type(data).__name__}"
        )
    return data


def vllm_rank_for(rank: int) -> int:
    """The smallest rank vLLM accepts that holds an adapter of ``rank``."""
    for allowed in VLLM_LORA_RANKS:
        if allowed >= rank:
            return allowed
    raise ConfigError(
        f"LoRA rank {rank} exceeds the largest rank vLLM serves "
        f"({VLLM_LORA_RANKS[-1]}): merge the adapter with `rlaif chat merge`"
    )
