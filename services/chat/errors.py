"""Exceptions of the chat service, each mapped to an HTTP status.

They extend the shared tree of ``services.common.errors``, so the app's
handlers answer them as OpenAI-style JSON bodies::

    ServiceError (services.common)            500
    ├── BadRequestError                       400
    │   ├── ContextLengthError                400  prompt + max_tokens too long
    │   └── AdapterError                      400  adapter unreadable or unservable
    ├── NotFoundError                         404
    │   └── UnknownModelError                 404  no base or adapter by that name
    ├── OverloadedError                       503  queue full or model loading
    └── BackendError                          500  generation failed mid-request
"""

from __future__ import annotations

from services.common.errors import (
    BadRequestError,
    NotFoundError,
    OverloadedError,
    ServiceError,
)

__all__ = [
    "AdapterError",
    "BackendError",
    "BadRequestError",
    "ContextLengthError",
    "NotFoundError",
    "OverloadedError",
    "ServiceError",
    "UnknownModelError",
]


class ContextLengthError(BadRequestError):
    """The messages, with the completion asked for, do not fit the context."""


class AdapterError(BadRequestError):
    """An adapter that cannot be read or served; the message says why."""


class UnknownModelError(NotFoundError):
    """The request names a model that is neither the base nor an adapter."""

    def __init__(self, name: str, known: list[str]) -> None:
        super().__init__(
            f"model {name!r} does not exist: use one of {known!r} "
            "(GET /v1/models lists them)"
        )
        self.name = name


class BackendError(ServiceError):
    """The model failed while generating; the server log has the cause."""

    error_type = "backend_error"
