"""Optional Bearer API-key check as a FastAPI dependency.

With no key configured every request passes (the default bind is 127.0.0.1,
so only local clients reach an unkeyed service). The comparison is constant
time so the key cannot be guessed byte by byte from response timings.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable

from fastapi import Request

from services.common.errors import AuthenticationError


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
