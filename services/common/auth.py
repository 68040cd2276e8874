"""Optional Bearer API-key check as a FastAPI dependency.

With no key configured every request passes (the default bind is 127.0.0.1,
so only local clients reach an unkeyed service). The comparison is constant
time so the key cannot be guessed byte by byte from response timings.

:class:`ApiKeyMiddleware` applies the same check to every path of an app
(metrics, docs and unknown routes included) except the health probes.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import Request

from services.common.errors import AuthenticationError, error_body


def bearer_token(request: Request) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, if any."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def require_api_key(api_key: str | None) -> Callable[[Request], None]:
    """A dependency that refuses requests without ``api_key`` (401).

    ``api_key`` None or empty disables the check.
    """
    expected = (api_key or "").encode()

    def check(request: Request) -> None:
        if not expected:
            return
        token = bearer_token(request)
        if token is None:
            raise AuthenticationError(
                "missing API key: send the header 'Authorization: Bearer <key>'"
            )
        if not secrets.compare_digest(token.encode(), expected):
            raise AuthenticationError("invalid API key")

    return check


OPEN_PATHS = frozenset({"/healthz", "/readyz"})


class ApiKeyMiddleware:
    """Refuse every HTTP request but the health probes without the key (401).

    The route dependency alone leaves ``/metrics``, ``/docs``,
    ``/openapi.json`` and unknown paths open; this middleware closes all of
    them and runs before the body is read, so an unauthenticated client
    cannot make the service buffer or parse anything. Probes stay open
    because orchestrators call them without credentials.
    """

    def __init__(
        self,
        app: Callable[..., Awaitable[None]],
        api_key: str | None,
        open_paths: frozenset[str] = OPEN_PATHS,
    ) -> None:
        self.app = app
        self.expected = (api_key or "").encode()
        self.open_paths = open_paths

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if (
            scope["type"] != "http"
            or not self.expected
            or scope.get("path") in self.open_paths
        ):
            await self.app(scope, receive, send)
            return
        problem = self._problem(scope)
        if problem is None:
            await self.app(scope, receive, send)
            return
        await _refuse(send, problem)

    def _problem(self, scope: dict[str, Any]) -> str | None:
        header = ""
        for name, value in scope.get("headers", ()):
            if name == b"authorization":
                header = value.decode("latin-1")
                break
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return "missing API key: send the header 'Authorization: Bearer <key>'"
        if not secrets.compare_digest(token.strip().encode(), self.expected):
            return "invalid API key"
        return None


async def _refuse(send: Any, message: str) -> None:
    body = json.dumps(error_body(message, AuthenticationError.error_type, 401))
    await send(
        {
            "type": "http.response.start",
            "status": 401,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"www-authenticate", b"Bearer"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body.encode()})
