"""A bounded load generator: N concurrent clients, a time and count limit.

Every client sends one request after the other until the duration or the
request budget runs out, so the run always stops by itself. Only
``http://127.0.0.1`` targets are accepted: this is a measurement of our own
services, never a tool to aim at someone else's.

A client that gets a 503 waits as its Retry-After says, capped at one
second to keep the pressure on (the trainer's client honours it the same
way), then tries again; the report separates those shed answers from real
errors and from the latency of accepted requests.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import httpx

from reliability import NotLoopbackError

BodyFactory = Callable[[int], dict[str, Any]]
MAX_SHED_PAUSE_S = 1.0


@dataclass(frozen=True)
class LoadPlan:
    """How hard and how long to push; both limits always apply."""

    clients: int
    duration_s: float
    max_requests: int
    timeout_s: float = 30.0


@dataclass
class LoadReport:
    """What one load run measured; latencies in milliseconds."""

    name: str
    clients: int
    duration_s: float
    requests: int
    ok: int
    shed_503: int
    shed_with_retry_after: int
    errors: int
    statuses: dict[str, int]
    throughput_rps: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    shed_p50_ms: float
    shed_p99_ms: float
    error_rate: float
    shed_rate: float
    rss_before_mb: float = 0.0
    rss_after_mb: float = 0.0
    items_per_request: int = 1
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _Tally:
    latencies: list[float] = field(default_factory=list)
    shed_latencies: list[float] = field(default_factory=list)
    statuses: Counter[str] = field(default_factory=Counter)
    retry_after: int = 0
    sent: int = 0


def require_loopback(url: str) -> None:
    """Refuse any target but 127.0.0.1."""
    if not httpx.URL(url).host == "127.0.0.1":
        raise NotLoopbackError(
            f"load target {url!r} is not on 127.0.0.1: the load and fault "
            "scripts only drive local services"
        )


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile (0..1) by nearest rank; 0.0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))
    return ordered[rank]


async def drive(
    name: str,
    url: str,
    body: BodyFactory,
    plan: LoadPlan,
    headers: dict[str, str] | None = None,
    items_per_request: int = 1,
) -> LoadReport:
    """Run ``plan.clients`` clients POSTing ``body(i)`` to ``url``."""
    require_loopback(url)
    tally = _Tally()
    limits = httpx.Limits(
        max_connections=plan.clients, max_keepalive_connections=plan.clients
    )
    deadline = time.monotonic() + plan.duration_s
    started = time.perf_counter()
    async with httpx.AsyncClient(
        limits=limits, timeout=plan.timeout_s, headers=headers
    ) as client:
        await asyncio.gather(
            *(
                _client_loop(client, url, body, plan, deadline, tally)
                for _ in range(plan.clients)
            )
        )
    elapsed = time.perf_counter() - started
    return _report(name, plan, tally, elapsed, items_per_request)


async def _client_loop(
    client: httpx.AsyncClient,
    url: str,
    body: BodyFactory,
    plan: LoadPlan,
    deadline: float,
    tally: _Tally,
) -> None:
    while time.monotonic() < deadline and tally.sent < plan.max_requests:
        index = tally.sent
        tally.sent += 1
        started = time.perf_counter()
        try:
            response = await client.post(url, json=body(index))
        except httpx.HTTPError as exc:
            tally.statuses[type(exc).__name__] += 1
            continue
        seconds = time.perf_counter() - started
        tally.statuses[str(response.status_code)] += 1
        if response.status_code == 503:
            tally.shed_latencies.append(seconds)
            tally.retry_after += "retry-after" in response.headers
            await asyncio.sleep(_pause(response))
        elif response.status_code == 200:
            tally.latencies.append(seconds)


def _pause(response: httpx.Response) -> float:
    try:
        seconds = float(response.headers.get("retry-after", "1"))
    except ValueError:
        seconds = 1.0
    return min(max(seconds, 0.0), MAX_SHED_PAUSE_S)


def _report(
    name: str, plan: LoadPlan, tally: _Tally, elapsed: float, items: int
) -> LoadReport:
    requests = sum(tally.statuses.values())
    ok = tally.statuses.get("200", 0)
    shed = tally.statuses.get("503", 0)
    errors = requests - ok - shed
    return LoadReport(
        name=name,
        clients=plan.clients,
        duration_s=round(elapsed, 2),
        requests=requests,
        ok=ok,
        shed_503=shed,
        shed_with_retry_after=tally.retry_after,
        errors=errors,
        statuses=dict(tally.statuses),
        throughput_rps=round(ok / elapsed, 2) if elapsed else 0.0,
        p50_ms=round(percentile(tally.latencies, 0.50) * 1e3, 1),
        p95_ms=round(percentile(tally.latencies, 0.95) * 1e3, 1),
        p99_ms=round(percentile(tally.latencies, 0.99) * 1e3, 1),
        shed_p50_ms=round(percentile(tally.shed_latencies, 0.50) * 1e3, 1),
        shed_p99_ms=round(percentile(tally.shed_latencies, 0.99) * 1e3, 1),
        error_rate=round(errors / requests, 4) if requests else 0.0,
        shed_rate=round(shed / requests, 4) if requests else 0.0,
        items_per_request=items,
    )


def judge_body(texts_per_request: int) -> BodyFactory:
    """Score requests with distinct texts (no cache can answer them)."""
    dishes = ("tofu curry", "chicken wings", "lentil soup", "beef stew")

    def body(index: int) -> dict[str, Any]:
        return {
            "rubric": "vegetarian",
            "texts": [
                f"Request {index}, text {k}: try a {dishes[(index + k) % 4]}."
                for k in range(texts_per_request)
            ],
        }

    return body


def chat_body(model: str, max_tokens: int) -> BodyFactory:
    def body(index: int) -> dict[str, Any]:
        return {
            "model": model,
            "messages": [{"role": "user", "content": f"What can I cook? ({index})"}],
            "max_tokens": max_tokens,
            "temperature": 0,
        }

    return body
