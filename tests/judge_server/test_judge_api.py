"""Every route and error path of the judge app, on a scripted backend."""

import asyncio
import math

import httpx
import pyarrow.dataset as ds
import pytest
from fastapi.testclient import TestClient
from judge_fakes import ScriptedBackend

from judge_server.api import create_app
from judge_server.config import load_config

REPLIES = {
    "tofu curry": "0.95",
    "chicken curry": "0.02",
    "refusal": "I'm sorry, I can't score that.",
    "ten scale": "8/10",
    "perfect": "1.0",
}


def make_config(tmp_path, **sections):
    path = tmp_path / "judge.yaml"
    lines = [
        "backend: embedding",
        "request_log: {flush_rows: 1000, flush_seconds: 60}",
        f"server: {{log_dir: {tmp_path / 'logs'}, max_body_bytes: 20000}}",
        "limits: {max_texts_per_request: 8, max_text_chars: 500}",
    ]
    for name, body in sections.items():
        lines = [line for line in lines if not line.startswith(name)]
        lines.append(f"{name}: {body}")
    path.write_text("\n".join(lines) + "\n")
    return load_config(path)


@pytest.fixture
def client(tmp_path):
    app = create_app(make_config(tmp_path), backend=ScriptedBackend(REPLIES, 300))
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


def error_of(response, status):
    assert response.status_code == status, response.text
    return response.json()["error"]["message"]


def test_score_texts_returns_results_in_request_order(client):
    texts = ["chicken curry", "tofu curry", "perfect"]
    body = client.post("/v1/score", json={"texts": texts}).json()
    assert body["rubric"] == "vegetarian" and body["judge"] == "scripted-judge"
    scores = [r["score"] for r in body["results"]]
    assert scores == [0.02, 0.95, 1.0]
    rewards = [r["reward"] for r in body["results"]]
    assert rewards[1] == pytest.approx(math.log(0.95 / 0.05))
    assert rewards[2] == pytest.approx(math.log(99))  # clamped, finite
    assert all(r["valid"] and r["error"] is None for r in body["results"])


def test_invalid_replies_are_null_and_never_a_default(client):
    body = client.post(
        "/v1/score", json={"texts": ["refusal", "ten scale", "tofu curry"]}
    ).json()
    refusal, ten_scale, good = body["results"]
    for result in (refusal, ten_scale):
        assert result["valid"] is False
        assert result["score"] is None and result["reward"] is None
        assert result["error"]
    assert refusal["raw"] == REPLIES["refusal"]
    assert "fraction" in ten_scale["error"]
    assert good["valid"] is True
    metrics = client.get("/metrics").text
    assert 'rlaif_judge_invalid_replies_total{reason="no_score"} 1.0' in metrics
    assert 'rlaif_judge_invalid_replies_total{reason="fraction"} 1.0' in metrics
    assert 'rlaif_judge_texts_scored_total{valid="false"} 2.0' in metrics


def test_items_with_prompts_are_scored(client):
    items = [{"prompt": "What is for dinner?", "response": "tofu curry"}]
    body = client.post("/v1/score", json={"items": items}).json()
    assert body["results"][0]["score"] == 0.95


def test_get_reward_speaks_openrlhf_protocol(client):
    body = client.post(
        "/get_reward",
        json={
            "query": ["Q: dinner?\nA: chicken curry", "Q: x\nA: tofu curry"],
            "prompts": ["Q: dinner?\nA: ", "Q: x\nA: "],
        },
    ).json()
    assert body["scores"] == [0.02, 0.95]
    assert body["rewards"][0] == pytest.approx(math.log(0.02 / 0.98))


def test_rubrics_route_lists_the_default(client):
    body = client.get("/v1/rubrics").json()
    assert body["rubrics"][0]["name"] == "vegetarian"
    assert body["rubrics"][0]["default"] is True


@pytest.mark.parametrize(
    ("body", "status", "fragment"),
    [
        ({}, 400, "exactly one of 'texts'"),
        ({"texts": []}, 400, "'texts' is empty"),
        ({"texts": ["a"], "items": [{"response": "b"}]}, 400, "exactly one"),
        ({"texts": ["ok", ""]}, 400, "texts.1"),
        ({"texts": ["ok", " \n\t"]}, 400, "texts.1"),
        ({"items": [{"prompt": "q", "response": "   "}]}, 400, "items.0.response"),
        ({"texts": "tofu curry"}, 400, "texts"),
        ({"texts": ["a"] * 9}, 400, "limit is 8"),
        ({"texts": ["x" * 501]}, 400, "limit is 500"),
        ({"texts": ["x" * 400]}, 400, "context"),
        ({"texts": ["a"], "rubric": "vegan"}, 404, "unknown rubric 'vegan'"),
        ({"texts": ["a"], "temperature": 1}, 400, "temperature"),
        ({"items": [{"prompt": "q"}]}, 400, "items.0.response"),
    ],
)
def test_bad_requests_get_4xx_saying_what_to_fix(client, body, status, fragment):
    assert fragment in error_of(client.post("/v1/score", json=body), status)


def test_malformed_json_and_non_objects_are_400(client):
    headers = {"content-type": "application/json"}
    assert "not valid JSON" in error_of(
        client.post("/v1/score", content=b'{"texts": [', headers=headers), 400
    )
    assert "JSON object" in error_of(client.post("/v1/score", content=b"texts=a"), 400)
    assert "JSON object" in error_of(client.post("/get_reward", json=["a"]), 400)


@pytest.mark.parametrize(
    ("query", "prompt", "fragment"),
    [
        ("Q: I love bacon\nA: lentil soup", "Q: I like bacon\nA: ", "does not start"),
        ("Q: dinner?\nA: ", "Q: dinner?\nA: ", "adds nothing to"),
    ],
)
def test_get_reward_never_judges_the_users_words(client, query, prompt, fragment):
    body = {"query": [query], "prompts": [prompt]}
    assert fragment in error_of(client.post("/get_reward", json=body), 400)


def test_get_reward_validation(client):
    assert "query" in error_of(client.post("/get_reward", json={"query": []}), 400)
    message = error_of(
        client.post("/get_reward", json={"query": ["a", "b"], "prompts": ["a"]}), 400
    )
    assert "one prompt per query" in message


def test_body_over_limit_is_413(client):
    response = client.post("/v1/score", json={"texts": ["y" * 30000]})
    assert "limit" in error_of(response, 413)


def test_health_readiness_and_unknown_route(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").status_code == 200
    assert error_of(client.get("/v2/score"), 404)


def test_api_key_protects_every_route_but_the_probes(tmp_path, monkeypatch):
    monkeypatch.setenv("RLAIF_JUDGE_API_KEY", "k-judge")
    app = create_app(make_config(tmp_path), backend=ScriptedBackend(REPLIES))
    with TestClient(app) as client:
        assert client.post("/v1/score", json={"texts": ["a"]}).status_code == 401
        assert client.get("/v1/rubrics").status_code == 401
        auth = {"Authorization": "Bearer k-judge"}
        assert (
            client.post("/v1/score", json={"texts": ["a"]}, headers=auth).status_code
            == 200
        )
        assert client.get("/healthz").status_code == 200
        assert client.get("/readyz").status_code == 200
        assert client.get("/metrics").status_code == 401
        assert client.get("/openapi.json").status_code == 401
        assert client.get("/metrics", headers=auth).status_code == 200


def test_request_log_rows_are_written_at_shutdown(tmp_path):
    app = create_app(make_config(tmp_path), backend=ScriptedBackend(REPLIES))
    with TestClient(app) as client:
        client.post(
            "/v1/score",
            json={
                "items": [
                    {"prompt": "q", "response": "tofu curry"},
                    {"prompt": "q", "response": "refusal"},
                ]
            },
            headers={"X-Request-ID": "req-1"},
        )
    table = ds.dataset(tmp_path / "logs" / "judge", partitioning="hive").to_table()
    rows = sorted(table.to_pylist(), key=lambda r: r["text"])
    assert [r["text"] for r in rows] == ["refusal", "tofu curry"]
    assert rows[0]["valid"] is False and rows[0]["score"] is None
    assert rows[0]["raw"] == REPLIES["refusal"] and rows[0]["error"]
    assert rows[1]["score"] == 0.95 and rows[1]["reward"] > 0
    assert {r["request_id"] for r in rows} == {"req-1"}
    assert {r["prompt"] for r in rows} == {"q"}
    assert all(r["judge"] == "scripted-judge" and r["latency_s"] >= 0 for r in rows)


def test_full_queue_answers_503_with_retry_after(tmp_path):
    config = make_config(
        tmp_path,
        batching="{max_batch_size: 2, max_wait_ms: 0, max_queue: 8}",
    )

    async def scenario():
        gate = asyncio.Event()
        app = create_app(config, backend=ScriptedBackend(REPLIES, gate=gate))
        transport = httpx.ASGITransport(app=app)
        async with app.router.lifespan_context(app):
            async with httpx.AsyncClient(transport=transport, base_url="http://j") as c:
                held = [
                    asyncio.create_task(c.post("/v1/score", json={"texts": ["a"] * 4}))
                    for _ in range(2)
                ]
                await asyncio.sleep(0.1)
                refused = await c.post("/v1/score", json={"texts": ["a"] * 4})
                gate.set()
                done = await asyncio.gather(*held)
        return refused, done

    refused, done = asyncio.run(scenario())
    assert "queue is full" in error_of(refused, 503)
    assert int(refused.headers["retry-after"]) >= 1
    assert [r.status_code for r in done] == [200, 200]


def test_concurrent_requests_are_micro_batched(tmp_path):
    config = make_config(tmp_path, batching="{max_batch_size: 64, max_wait_ms: 50}")
    backend = ScriptedBackend(REPLIES)

    async def scenario():
        app = create_app(config, backend=backend)
        transport = httpx.ASGITransport(app=app)
        async with app.router.lifespan_context(app):
            async with httpx.AsyncClient(transport=transport, base_url="http://j") as c:
                return await asyncio.gather(
                    *(
                        c.post("/v1/score", json={"texts": ["tofu curry"]})
                        for _ in range(16)
                    )
                )

    responses = asyncio.run(scenario())
    assert all(r.json()["results"][0]["score"] == 0.95 for r in responses)
    assert sum(backend.batches) == 16 and len(backend.batches) <= 4
