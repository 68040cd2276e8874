"""JudgeClient: order, chunking, round-robin, retries, outages, validation."""

from __future__ import annotations

import asyncio
import json
import math
import time

import httpx
import pytest
from trainer_fakes import free_port, keyword_score

from trainer.errors import JudgeProtocolError, JudgeUnavailableError
from trainer.judge_client import JudgeClient, JudgeResult


def _echo_transport(seen: list[tuple[str, list[str]]], fail_first: int = 0):
    """A transport scoring each text by its length; the first N calls 503."""
    calls = {"n": 0}

    def handler(request: httpx.Request) -> httpx.Response:
        calls["n"] += 1
        if calls["n"] <= fail_first:
            return httpx.Response(503, headers={"Retry-After": "0"})
        texts = json.loads(request.content)["texts"]
        seen.append((request.url.host, texts))
        results = [
            {
                "score": 0.5,
                "reward": float(len(t)),
                "valid": True,
                "raw": t,
                "error": None,
            }
            for t in texts
        ]
        return httpx.Response(
            200, json={"rubric": "r", "judge": "j", "results": results}
        )

    return httpx.MockTransport(handler)


def _client(urls, transport=None, **kwargs) -> JudgeClient:
    defaults = dict(max_downtime_s=1.0, retry_initial_s=0.01, retry_max_s=0.05)
    return JudgeClient(
        urls, "vegetarian", transport=transport, **{**defaults, **kwargs}
    )


def test_chunked_batch_comes_back_in_request_order_across_round_robin_urls():
    seen: list = []
    client = _client(
        ["http://judge-a", "http://judge-b"], _echo_transport(seen), max_batch=3
    )
    texts = ["x" * n for n in range(1, 11)]

    results = client.score_sync(texts)
    client.close()

    assert [r.reward for r in results] == [float(n) for n in range(1, 11)]
    assert sorted(len(batch) for _, batch in seen) == [1, 3, 3, 3]
    assert {host for host, _ in seen} == {"judge-a", "judge-b"}


def test_blank_responses_are_invalid_locally_and_never_sent():
    seen: list = []
    client = _client(["http://judge"], _echo_transport(seen))

    results = client.score_sync(["ab", "", " \n", "abcd"])
    client.close()

    assert [r.reward for r in results] == [2.0, None, None, 4.0]
    assert [r.valid for r in results] == [True, False, False, True]
    assert results[1].error == "empty response"
    assert [batch for _, batch in seen] == [["ab", "abcd"]]


def test_503_with_retry_after_is_retried_until_the_judge_answers():
    seen: list = []
    client = _client(["http://judge"], _echo_transport(seen, fail_first=2))

    results = asyncio.run(client.score(["abc"]))

    assert results[0].reward == 3.0
    assert client.stats.failures == 2


def test_every_url_down_past_max_downtime_raises_unavailable_not_a_score():
    dead = [f"http://127.0.0.1:{free_port()}", f"http://127.0.0.1:{free_port()}"]
    client = _client(dead, max_downtime_s=0.5)
    started = time.perf_counter()

    with pytest.raises(JudgeUnavailableError, match="max_downtime_s"):
        client.score_sync(["some answer"])

    assert 0.4 < time.perf_counter() - started < 5
    client.close()


def test_a_4xx_is_a_protocol_error_and_is_not_retried():
    calls = []

    def handler(request):
        calls.append(request)
        return httpx.Response(422, json={"detail": "unknown rubric"})

    client = _client(["http://judge"], httpx.MockTransport(handler))

    with pytest.raises(JudgeProtocolError, match="422"):
        asyncio.run(client.score(["x"]))
    assert len(calls) == 1


def test_invalid_results_are_rescored_once_and_stay_invalid_if_still_bad(fake_judge):
    url, state = fake_judge
    state.invalid_text = "always bad"
    client = _client([url])

    results = client.score_sync(["tofu bowl", "always bad", "beef stew"])
    client.close()

    assert [r.valid for r in results] == [True, False, True]
    assert results[1].score is None and results[1].reward is None
    assert state.seen.count("always bad") == 2  # the one retry
    assert results[2].score == pytest.approx(keyword_score("beef stew"))


def test_garbage_body_is_retried_then_reported_as_unavailable(fake_judge):
    url, state = fake_judge
    state.garbage = True
    client = _client([url], max_downtime_s=0.3)

    with pytest.raises(JudgeUnavailableError, match="malformed"):
        client.score_sync(["x"])
    client.close()
    assert state.requests >= 2


@pytest.mark.parametrize(
    "payload",
    [
        {"valid": True, "score": 1.0, "reward": 5.0},
        {"valid": True, "score": 0.0, "reward": -5.0},
        {"valid": True, "score": float("nan"), "reward": 0.0},
        {"valid": True, "score": 0.7, "reward": math.inf},
        {"valid": True, "score": "0.7", "reward": 0.8},
        {"valid": False, "score": 0.7, "reward": 0.8},
    ],
)
def test_impossible_or_refused_scores_parse_as_invalid(payload):
    result = JudgeResult.from_payload(payload)

    assert not result.valid
    assert result.score is None and result.reward is None


def test_prompts_are_sent_as_items_when_given():
    bodies = []

    def handler(request):
        bodies.append(json.loads(request.content))
        n = len(bodies[-1]["items"])
        ok = {"score": 0.6, "reward": 0.4, "valid": True, "raw": "", "error": None}
        return httpx.Response(200, json={"results": [ok] * n})

    client = _client(["http://judge"], httpx.MockTransport(handler))
    asyncio.run(client.score(["answer"], prompts=["question?"]))

    assert bodies == [
        {
            "rubric": "vegetarian",
            "items": [{"prompt": "question?", "response": "answer"}],
        }
    ]
