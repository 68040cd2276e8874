"""Settings every service shares, read from arguments, then the environment.

A service subclasses :class:`ServiceSettings` with its own ``env_prefix``
(``RLAIF_JUDGE_``, ``RLAIF_CHAT_``), so ``RLAIF_JUDGE_API_KEY`` sets the
judge's key without putting it in a YAML file or on a command line.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class ServiceSettings(BaseSettings):
    """Host, port, API key, request-log folder and body size limit."""

    model_config = SettingsConfigDict(env_prefix="RLAIF_", extra="ignore")

    host: str = Field(
        "127.0.0.1",
        description="Interface to bind; 0.0.0.0 exposes the service to the network.",
    )
    port: int = Field(8000, ge=0, le=65535, description="TCP port to listen on.")
    api_key: SecretStr | None = Field(
        None, description="Bearer key clients must send; unset disables the check."
    )
    log_dir: Path = Field(Path("logs"), description="Root of the Parquet request logs.")
    max_body_bytes: int = Field(
        1_048_576, gt=0, description="Largest request body accepted (413 above)."
    )

    @field_validator("api_key")
    @classmethod
    def _empty_key_means_none(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().strip():
            return None
        return value

    def api_key_value(self) -> str | None:
        """The key in clear, for the auth dependency only (never log it)."""
        return self.api_key.get_secret_value() if self.api_key else None
