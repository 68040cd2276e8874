"""Parts every service shares: request log, auth, metrics, health, errors.

The judge server and the chat service build their apps from these, so both
answer errors, keys, health probes and scrapes the same way. The tests, the
demo and the reliability checks start those services as child processes
with :mod:`services.common.process`.
"""

from services.common.auth import ApiKeyMiddleware, require_api_key
from services.common.body_limit import BodySizeLimitMiddleware
from services.common.errors import (
    AuthenticationError,
    BadRequestError,
    NotFoundError,
    OverloadedError,
    PayloadTooLargeError,
    ServiceError,
    error_body,
    error_response,
    install_error_handlers,
)
from services.common.health import health_router
from services.common.metrics import metrics_router, new_registry
from services.common.request_log import RequestLog
from services.common.settings import ServiceSettings

__all__ = [
    "ApiKeyMiddleware",
    "AuthenticationError",
    "BadRequestError",
    "BodySizeLimitMiddleware",
    "NotFoundError",
    "OverloadedError",
    "PayloadTooLargeError",
    "RequestLog",
    "ServiceError",
    "ServiceSettings",
    "error_body",
    "error_response",
    "health_router",
    "install_error_handlers",
    "metrics_router",
    "new_registry",
    "require_api_key",
]
