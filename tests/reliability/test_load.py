"""A short load burst: the judge sheds past its queue bound, chat keeps up."""

from __future__ import annotations

import asyncio

import pytest
from reliability_constants import JUDGE_QUEUE

from reliability import NotLoopbackError
from reliability.load import LoadPlan, chat_body, drive, judge_body, percentile


def test_judge_past_its_queue_bound_sheds_with_503_and_retry_after(judge):
    # 40 clients x 8 texts = 320 texts wanted at once, 5x the queue bound.
    plan = LoadPlan(clients=40, duration_s=3.0, max_requests=2000)

    report = asyncio.run(
        drive("judge", f"{judge.url}/v1/score", judge_body(8), plan, judge.headers, 8)
    )

    assert report.errors == 0, report.statuses
    assert report.ok > 0 and report.shed_503 > 0
    assert report.shed_with_retry_after == report.shed_503
    # Shedding answers at once instead of queueing the client.
    assert report.shed_p50_ms < report.p50_ms
    assert report.requests <= plan.max_requests
    assert JUDGE_QUEUE == 64


def test_chat_burst_of_concurrent_clients_has_no_errors(chat):
    plan = LoadPlan(clients=5, duration_s=2.0, max_requests=200, timeout_s=60.0)

    report = asyncio.run(
        drive(
            "chat",
            f"{chat.url}/v1/chat/completions",
            chat_body("base", 8),
            plan,
            chat.headers,
        )
    )

    assert report.errors == 0 and report.shed_503 == 0, report.statuses
    assert report.ok > 0 and report.p50_ms <= report.p99_ms


def test_load_refuses_targets_off_loopback():
    plan = LoadPlan(clients=1, duration_s=1.0, max_requests=1)
    with pytest.raises(NotLoopbackError, match="127.0.0.1"):
        asyncio.run(drive("x", "http://example.com/v1/score", judge_body(1), plan))


def test_percentile_is_nearest_rank():
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.5) == 50.0
    assert percentile(values, 0.99) == 99.0
    assert percentile([], 0.5) == 0.0
