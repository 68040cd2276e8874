"""Exceptions of the services and their mapping to OpenAI-style JSON errors.

Every error a client sees has the body ``{"error": {"message", "type",
"code"}}`` (``code`` is the HTTP status), so OpenAI clients, vLLM clients and
our own all read it the same way. The tree::

    ServiceError                 500  base; never raised for bad input
    ├── BadRequestError          400  the request is wrong: the message says how
    ├── AuthenticationError      401  missing or wrong Bearer key
    ├── NotFoundError            404  unknown rubric, model or adapter
    ├── PayloadTooLargeError     413  body over the configured limit
    └── OverloadedError          503  queue full: retry after ``retry_after`` s

The catch-all handler answers 500 with a fixed message and logs the stack
trace server-side only: a trace can carry prompts, paths or keys.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

logger = logging.getLogger(__name__)


class ServiceError(Exception):
    """An error with the HTTP status and OpenAI error type it maps to."""

    status_code = 500
    error_type = "internal_error"

    def __init__(self, message: str, *, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.message = message
        self.headers = headers or {}


class BadRequestError(ServiceError):
    status_code = 400
    error_type = "invalid_request_error"


class AuthenticationError(ServiceError):
    status_code = 401
    error_type = "authentication_error"

    def __init__(self, message: str = "missing or invalid API key") -> None:
        # RFC 6750 section 3: a 401 names the scheme the client should use.
        super().__init__(message, headers={"WWW-Authenticate": "Bearer"})


class NotFoundError(ServiceError):
    status_code = 404
    error_type = "not_found_error"


class PayloadTooLargeError(ServiceError):
    status_code = 413
    error_type = "request_too_large"


class OverloadedError(ServiceError):
    status_code = 503
    error_type = "overloaded_error"

    def __init__(self, message: str, *, retry_after: float = 1.0) -> None:
        seconds = max(1, round(retry_after))
        super().__init__(message, headers={"Retry-After": str(seconds)})
        self.retry_after = seconds


_STATUS_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    413: "request_too_large",
    422: "invalid_request_error",
    429: "rate_limit_error",
    503: "overloaded_error",
}


def error_body(message: str, error_type: str, code: int) -> dict[str, Any]:
    """The JSON body of every error answer."""
    return {"error": {"message": message, "type": error_type, "code": code}}


def error_response(
    message: str,
    status_code: int,
    error_type: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """A JSON error answer; the type defaults to the one usual for the status."""
    error_type = error_type or _STATUS_TYPES.get(status_code, "internal_error")
    return JSONResponse(
        error_body(message, error_type, status_code),
        status_code=status_code,
        headers=headers,
    )


_LOCATIONS = ("body", "query", "path", "header", "cookie")


def describe_validation_errors(errors: list[dict[str, Any]]) -> str:
    """One line per problem, each naming the field: ``texts.2: ...``."""
    parts = []
    for error in errors[:5]:
        loc = [str(part) for part in error.get("loc", ())]
        if loc and loc[0] in _LOCATIONS:  # where FastAPI looked, not a field
            loc = loc[1:]
        field = ".".join(loc) or "body"
        parts.append(f"{field}: {error.get('msg', 'invalid value')}")
    if len(errors) > 5:
        parts.append(f"... and {len(errors) - 5} more problems")
    return "; ".join(parts)


def _is_json_decode_error(errors: list[dict[str, Any]]) -> bool:
    return any(e.get("type") == "json_invalid" for e in errors)


def _is_not_an_object(errors: list[dict[str, Any]]) -> bool:
    """The body as a whole is not a JSON object (form data, a list, ...)."""
    return any(
        tuple(e.get("loc", ())) == ("body",)
        and e.get("type") in ("model_attributes_type", "dict_type", "missing")
        for e in errors
    )


async def _service_error_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ServiceError)
    if exc.status_code >= 500 and not isinstance(exc, OverloadedError):
        logger.error("%s %s failed: %s", request.method, request.url.path, exc)
    return error_response(
        exc.message, exc.status_code, exc.error_type, headers=exc.headers
    )


async def _validation_error_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    if _is_json_decode_error(errors):
        return error_response(
            "request body is not valid JSON: send a JSON object with "
            "Content-Type: application/json",
            400,
        )
    if _is_not_an_object(errors):
        return error_response(
            "request body must be a JSON object (with Content-Type: "
            "application/json), not a list, a string or form data",
            400,
        )
    # A wrong field is a client error that the client can fix: 400, like
    # OpenAI's API, rather than FastAPI's default 422.
    return error_response(describe_validation_errors(errors), 400)


async def _http_error_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    message = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
    if exc.status_code == 404 and message == "Not Found":
        message = f"no route {request.method} {request.url.path}"
    return error_response(message, exc.status_code, headers=exc.headers)


async def _unexpected_error_handler(request: Request, exc: Exception) -> JSONResponse:
    logger.exception("unhandled error in %s %s", request.method, request.url.path)
    return error_response("internal server error; the server log has the details", 500)


def install_error_handlers(app: FastAPI) -> None:
    """Make every error of ``app`` answer with the OpenAI-style JSON body."""
    app.add_exception_handler(ServiceError, _service_error_handler)
    app.add_exception_handler(RequestValidationError, _validation_error_handler)
    app.add_exception_handler(StarletteHTTPException, _http_error_handler)
    app.add_exception_handler(Exception, _unexpected_error_handler)
