"""Security checks against a running service: keys, body limit, leaks.

- With a key configured every route but ``/healthz`` and ``/readyz``
  answers 401 with a JSON error body when the key is missing or wrong:
  the OpenAPI routes, ``/metrics``, the docs and unknown paths alike.
- A body over ``max_body_bytes`` is refused with 413 before it is parsed:
  an oversize body that is not even JSON still gets 413, not 400, whether
  it declares its length or arrives chunked without one.
- The key never appears in the service's log output or Parquet rows.
- No error body carries a stack trace or a server file path.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pyarrow.parquet as pq

from reliability.services import REPO_ROOT, ServiceProcess

OPEN_PATHS = ("/healthz", "/readyz")
EXTRA_PATHS = (("GET", "/metrics"), ("GET", "/docs"), ("GET", "/no-such-route"))
LEAK_MARKERS = (
    "Traceback",
    'File "',
    "site-packages",
    '.py"',
    ".py:",
    str(REPO_ROOT),
    "/usr/lib/python",
)


def leaks_in(text: str) -> list[str]:
    """The leak markers (stack trace, server paths) found in ``text``."""
    return [marker for marker in LEAK_MARKERS if marker in text]


def is_json_error(response: httpx.Response) -> bool:
    """An OpenAI-style ``{"error": {"message": ...}}`` body."""
    try:
        body = response.json()
    except ValueError:
        return False
    error = body.get("error") if isinstance(body, dict) else None
    return isinstance(error, dict) and isinstance(error.get("message"), str)


@dataclass
class SecurityReport:
    """What the checks found; ``problems`` is empty when all passed."""

    service: str
    routes_checked: int = 0
    refused_401: int = 0
    open_probes_ok: int = 0
    oversize_declared_status: int = 0
    oversize_chunked_status: int = 0
    key_in_logs: bool = False
    key_in_parquet: bool = False
    parquet_rows_searched: int = 0
    problems: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def routes_of(service: ServiceProcess) -> list[tuple[str, str]]:
    """(method, path) of every route in the service's OpenAPI schema."""
    schema = httpx.get(f"{service.url}/openapi.json", headers=service.headers).json()
    routes = [
        (method.upper(), path)
        for path, item in schema["paths"].items()
        for method in item
        if method in ("get", "post", "put", "patch", "delete")
    ]
    return routes + [("GET", "/openapi.json"), *EXTRA_PATHS]


def exercise(service: ServiceProcess, kind: str) -> None:
    """A few valid requests with the key, so the logs have rows to search."""
    if kind == "judge":
        path, body = "/v1/score", {"texts": ["a lentil curry", "a beef stew"]}
    else:
        path = "/v1/chat/completions"
        body = {
            "model": "base",
            "messages": [{"role": "user", "content": "What can I cook?"}],
            "max_tokens": 4,
        }
    for _ in range(3):
        response = httpx.post(
            f"{service.url}{path}", json=body, headers=service.headers, timeout=60
        )
        response.raise_for_status()


def check_auth(service: ServiceProcess, report: SecurityReport) -> None:
    """Every route but the probes: 401 + JSON error without or with a bad key."""
    for method, path in routes_of(service):
        if path in OPEN_PATHS:
            continue
        for headers in ({}, {"Authorization": "Bearer wrong-key-0000"}):
            report.routes_checked += 1
            response = httpx.request(
                method, f"{service.url}{path}", headers=headers, json={}
            )
            if response.status_code == 401 and is_json_error(response):
                report.refused_401 += 1
            else:
                report.problems.append(
                    f"{method} {path} without a valid key answered "
                    f"{response.status_code}: {response.text[:120]!r}"
                )
    for path in OPEN_PATHS:
        if httpx.get(f"{service.url}{path}").status_code == 200:
            report.open_probes_ok += 1
        else:
            report.problems.append(f"probe {path} needs a key; it must stay open")


def check_body_limit(
    service: ServiceProcess, path: str, max_bytes: int, report: SecurityReport
) -> None:
    """Oversize bodies, declared or chunked, are refused with 413 unparsed."""
    # Not JSON at all: a 400 would mean the service parsed it first.
    garbage = b"{" + b"x" * max_bytes
    url = f"{service.url}{path}"
    headers = {**service.headers, "Content-Type": "application/json"}
    declared = httpx.post(url, content=garbage, headers=headers)
    chunked = httpx.post(url, content=_chunks(garbage), headers=headers)
    report.oversize_declared_status = declared.status_code
    report.oversize_chunked_status = chunked.status_code
    for kind, response in (("declared", declared), ("chunked", chunked)):
        if response.status_code != 413 or not is_json_error(response):
            report.problems.append(
                f"{kind} oversize body to {path} answered {response.status_code}, "
                "not 413 with a JSON error"
            )


def _chunks(data: bytes, size: int = 65536) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


def check_error_bodies(
    service: ServiceProcess, probes: list[tuple[str, str, Any]], report: SecurityReport
) -> None:
    """Bad requests answer 4xx JSON errors with no trace and no server path."""
    for method, path, body in probes:
        kwargs: dict[str, Any] = (
            {"content": body} if isinstance(body, bytes) else {"json": body}
        )
        response = httpx.request(
            method,
            f"{service.url}{path}",
            headers={**service.headers, "Content-Type": "application/json"},
            **kwargs,
        )
        if not 400 <= response.status_code < 500 or not is_json_error(response):
            report.problems.append(
                f"{method} {path} with {body!r:.60} answered {response.status_code}"
                f": {response.text[:120]!r}"
            )
        if leaks_in(response.text):
            report.problems.append(
                f"{method} {path} error body leaks {leaks_in(response.text)}"
            )


def check_key_absent(
    service: ServiceProcess, log_root: Path, keys: list[str], report: SecurityReport
) -> None:
    """No key (right or wrong) in the process output or any Parquet row."""
    text = service.log_text()
    report.key_in_logs = any(key in text for key in keys)
    for path in sorted(log_root.rglob("*.parquet")):
        for row in pq.read_table(path).to_pylist():
            report.parquet_rows_searched += 1
            values = " ".join(str(value) for value in row.values())
            if any(key in values for key in keys):
                report.key_in_parquet = True
    if report.key_in_logs:
        report.problems.append(f"an API key appears in {service.log_path}")
    if report.key_in_parquet:
        report.problems.append(f"an API key appears in a Parquet row under {log_root}")


JUDGE_BAD_REQUESTS: list[tuple[str, str, Any]] = [
    ("POST", "/v1/score", b"{not json"),
    ("POST", "/v1/score", [1, 2, 3]),
    ("POST", "/v1/score", {"texts": []}),
    ("POST", "/v1/score", {"texts": ["a"], "items": [{"response": "b"}]}),
    ("POST", "/v1/score", {"rubric": "../../etc/passwd", "texts": ["a"]}),
    ("POST", "/v1/score", {"texts": ["x" * 9000]}),
    ("POST", "/v1/score", {"texts": [None]}),
    ("POST", "/get_reward", {"query": ["a"], "prompts": ["p", "q"]}),
    ("GET", "/v1/score", None),
    ("POST", "/v1/score", b'{"texts": ["lone surrogate \\ud800"]}'),
]
CHAT_BAD_REQUESTS: list[tuple[str, str, Any]] = [
    ("POST", "/v1/chat/completions", b"\xff\xfe"),
    (
        "POST",
        "/v1/chat/completions",
        b'{"model": "base", "messages": [{"role": "user", "content": "\\ud800"}]}',
    ),
    ("POST", "/v1/chat/completions", {"model": "nope", "messages": []}),
    ("POST", "/v1/chat/completions", {"model": "base", "messages": "hi"}),
    (
        "POST",
        "/v1/chat/completions",
        {
            "model": "base",
            "messages": [{"role": "user", "content": "hi"}],
            "max_tokens": 10**9,
        },
    ),
    ("POST", "/v1/load_lora_adapter", {"lora_name": "x", "lora_path": "/etc"}),
    ("POST", "/v1/load_lora_adapter", {"lora_name": "x", "lora_path": "../../.."}),
    ("POST", "/v1/unload_lora_adapter", {"lora_name": "never-loaded"}),
]
