"""The judge server's exceptions.

They extend the shared service tree, so the HTTP layer maps each to its
status without a table of its own::

    JudgeError                      base of everything below
    ├── JudgeConfigError            a config or rubric file is wrong (startup)
    └── BackendUnavailableError     the backend cannot be loaded or reached
    services.common BadRequestError
    ├── TextTooLongError            a text over the length limit or context
    └── TooManyTextsError           more texts than one request may carry
    services.common NotFoundError
    └── UnknownRubricError          a rubric name with no YAML file
    services.common OverloadedError
    └── QueueFullError              the micro-batch queue is full (503)

An unparseable judge reply is *not* an exception: it is a result with
``valid: false`` and a reason, counted and logged like any other.
"""

from __future__ import annotations

from services.common.errors import (
    BadRequestError,
    NotFoundError,
    OverloadedError,
    ServiceError,
)


class JudgeError(Exception):
    """Base of the judge's own errors."""


class JudgeConfigError(JudgeError, ValueError):
    """A config or rubric file is wrong; the message names the field and fix."""


class BackendUnavailableError(JudgeError, ServiceError):
    """The backend failed to load or its remote endpoint kept failing."""

    status_code = 503
    error_type = "backend_unavailable"

    def __init__(self, message: str) -> None:
        super().__init__(message, headers={"Retry-After": "5"})


class TextTooLongError(BadRequestError):
    """A text longer than the configured limit or the judge's context."""


class TooManyTextsError(BadRequestError):
    """More texts in one request than ``limits.max_texts_per_request``."""


class QueryPromptMismatchError(BadRequestError):
    """A ``/get_reward`` query that does not continue its prompt."""


class UnknownRubricError(NotFoundError):
    """The request names a rubric the server has not loaded."""


class QueueFullError(OverloadedError):
    """The micro-batch queue holds ``batching.max_queue`` texts already."""
