"""The running chat service, driven with the official openai client."""

from __future__ import annotations

import json
import shutil
import threading
import time

import httpx
import openai
import pyarrow.dataset as ds
import pytest
from chat_fixtures import API_KEY, reference_reply

QUESTION = "What should I cook tonight? Café or crème?"
AUTH = {"Authorization": f"Bearer {API_KEY}"}


def ask(client, model="base", **options):
    return client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": QUESTION}],
        temperature=options.pop("temperature", 0),
        **options,
    )


def stream_text(client, model="base", **options) -> list[str]:
    chunks = client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": QUESTION}],
        temperature=0,
        stream=True,
        **options,
    )
    return [c.choices[0].delta.content or "" for c in chunks if c.choices]


def test_plain_completion_is_the_scripted_reply_ending_at_eos(client, scripted):
    response = ask(client)

    choice = response.choices[0]
    assert choice.message.content == scripted.reply
    assert choice.finish_reason == "stop"
    assert response.usage.completion_tokens == len(scripted.reply_ids) + 1  # EOS
    assert response.model == "base"


def test_stream_joins_to_the_plain_reply_without_replacement_chars(client, scripted):
    pieces = stream_text(client)

    assert "".join(pieces) == ask(client).choices[0].message.content
    assert "".join(pieces) == scripted.reply
    assert not any("\ufffd" in piece for piece in pieces)
    # The emoji's four byte-tokens arrive as one whole character.
    assert any("🥗" in piece for piece in pieces)


def test_stream_ends_with_finish_reason_usage_and_done(service, scripted):
    body = {
        "model": "base",
        "messages": [{"role": "user", "content": QUESTION}],
        "temperature": 0,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    with httpx.stream(
        "POST", f"{service.v1}/chat/completions", json=body, headers=AUTH
    ) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        events = [
            line[6:] for line in response.iter_lines() if line.startswith("data: ")
        ]

    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["usage"]["completion_tokens"] == len(scripted.reply_ids) + 1


def test_emoji_and_accents_reach_the_request_log_intact(client, service, scripted):
    response = client.chat.completions.create(
        model="base",
        messages=[
            {"role": "system", "content": "Réponds en français 🙂"},
            {"role": "user", "content": QUESTION},
        ],
        temperature=0,
        stream=True,
    )
    request_id = next(iter(response)).id
    "".join(c.choices[0].delta.content or "" for c in response)

    row = _logged_row(service, request_id)
    assert row["reply"] == scripted.reply
    assert row["messages"][0] == {"role": "system", "content": "Réponds en français 🙂"}
    assert row["stream"] is True
    assert row["status"] == 200
    assert row["finish_reason"] == "stop"
    assert row["completion_tokens"] == len(scripted.reply_ids) + 1
    assert row["latency_s"] > 0 and row["ttft_s"] > 0


def _logged_row(service, request_id: str, timeout: float = 10.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        folder = service.log_dir / "chat"
        if folder.exists():
            table = ds.dataset(folder, format="parquet", partitioning="hive").to_table()
            rows = [r for r in table.to_pylist() if r["request_id"] == request_id]
            if rows:
                return rows[0]
        time.sleep(0.1)
    raise AssertionError(f"no request-log row for {request_id}")


def test_model_name_selects_the_adapter(client, scripted, adapter_dirs):
    expected = reference_reply(scripted.base_dir, adapter_dirs["veg"], QUESTION, 24)

    reply = ask(client, model="veg", max_tokens=24).choices[0].message.content

    assert reply == expected
    assert reply != scripted.reply
    # And the base is still the base after an adapter request.
    assert ask(client).choices[0].message.content == scripted.reply


def test_models_lists_base_and_adapters(client):
    models = {m.id: m for m in client.models.list().data}

    assert {"base", "veg"} <= set(models)
    assert models["veg"].model_extra["parent"] == "base"


def test_hot_load_then_unload_an_adapter(client, service, scripted, adapter_dirs):
    body = {"lora_name": "alt", "lora_path": str(adapter_dirs["alt"])}
    loaded = httpx.post(f"{service.v1}/load_lora_adapter", json=body, headers=AUTH)
    assert loaded.status_code == 200, loaded.text
    assert "alt" in {m.id for m in client.models.list().data}
    expected = reference_reply(scripted.base_dir, adapter_dirs["alt"], QUESTION, 16)
    assert (
        ask(client, model="alt", max_tokens=16).choices[0].message.content == expected
    )

    again = httpx.post(f"{service.v1}/load_lora_adapter", json=body, headers=AUTH)
    assert again.status_code == 400 and "already loaded" in again.text

    unloaded = httpx.post(
        f"{service.v1}/unload_lora_adapter", json={"lora_name": "alt"}, headers=AUTH
    )
    assert unloaded.status_code == 200, unloaded.text
    assert "alt" not in {m.id for m in client.models.list().data}
    with pytest.raises(openai.NotFoundError):
        ask(client, model="alt", max_tokens=4)


def test_request_in_flight_finishes_on_its_adapter_during_unload(
    client, service, scripted, adapter_dirs, tmp_path
):
    folder = tmp_path / "leaving"
    shutil.copytree(adapter_dirs["alt"], folder)
    body = {"lora_name": "leaving", "lora_path": str(folder)}
    assert httpx.post(
        f"{service.v1}/load_lora_adapter", json=body, headers=AUTH
    ).is_success
    expected = reference_reply(scripted.base_dir, folder, QUESTION, 300)
    unload: dict = {}

    def unload_now() -> None:
        unload["sent"] = time.monotonic()
        unload["response"] = httpx.post(
            f"{service.v1}/unload_lora_adapter",
            json={"lora_name": "leaving"},
            headers=AUTH,
            timeout=60,
        )

    stream = client.chat.completions.create(
        model="leaving",
        messages=[{"role": "user", "content": QUESTION}],
        temperature=0,
        max_tokens=300,
        stream=True,
    )
    pieces, worker = [], threading.Thread(target=unload_now)
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content and not worker.is_alive():
            if "sent" not in unload:
                worker.start()
        pieces.extend([chunk.choices[0].delta.content or ""] if chunk.choices else [])
    finished = time.monotonic()
    worker.join(timeout=60)

    assert unload["sent"] < finished, "the unload must start while streaming"
    assert unload["response"].status_code == 200
    assert "".join(pieces) == expected
    with pytest.raises(openai.NotFoundError):
        ask(client, model="leaving", max_tokens=4)


def test_seed_makes_sampling_repeatable(client):
    first = ask(client, model="veg", temperature=1.0, seed=7, max_tokens=12)
    second = ask(client, model="veg", temperature=1.0, seed=7, max_tokens=12)

    assert first.choices[0].message.content == second.choices[0].message.content


def test_stop_sequence_spanning_tokens_is_cut_in_both_modes(client, scripted):
    stop = "brûlée 🥗"  # ends inside the emoji's byte tokens
    expected = scripted.reply[: scripted.reply.index(stop)]

    plain = ask(client, stop=[stop])
    streamed = "".join(stream_text(client, stop=stop))

    assert plain.choices[0].message.content == expected
    assert plain.choices[0].finish_reason == "stop"
    assert streamed == expected


def test_max_tokens_cuts_the_reply_with_finish_reason_length(client, scripted):
    # Three tokens end inside "à": its lone first byte must not become U+FFFD.
    response = ask(client, max_tokens=3)

    assert response.choices[0].finish_reason == "length"
    assert response.usage.completion_tokens == 3
    assert response.choices[0].message.content == "Voil"
    assert "".join(stream_text(client, max_tokens=3)) == "Voil"


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        ({"model": "nope"}, 404, "model 'nope' does not exist"),
        ({"messages": []}, 400, "messages"),
        ({"messages": [{"role": "wizard", "content": "hi"}]}, 400, "role"),
        ({"max_tokens": 401}, 400, "limit of 400"),
        ({"max_tokens": 0}, 400, "max_tokens"),
        ({"n": 2}, 400, "n=2 is not supported"),
        ({"messages": [{"role": "user", "content": "ok " * 600}]}, 400, "context"),
        (
            {"max_tokens": 400, "messages": [{"role": "user", "content": "ok " * 100}]},
            400,
            "maximum context length is 512",
        ),
    ],
    ids=[
        "unknown-model",
        "empty-messages",
        "bad-role",
        "max-tokens-over-limit",
        "max-tokens-zero",
        "n-above-one",
        "prompt-over-context",
        "prompt-plus-completion-over-context",
    ],
)
def test_bad_requests_get_openai_error_bodies(service, body, status, words):
    request = {
        "model": "base",
        "messages": [{"role": "user", "content": QUESTION}],
        **body,
    }
    for stream in (False, True):
        response = httpx.post(
            f"{service.v1}/chat/completions",
            json={**request, "stream": stream},
            headers=AUTH,
        )
        assert response.status_code == status, response.text
        error = response.json()["error"]
        assert words in error["message"]
        assert error["code"] == status and error["type"]


def test_openai_client_raises_typed_errors(client):
    with pytest.raises(openai.NotFoundError):
        ask(client, model="nope")
    with pytest.raises(openai.BadRequestError, match="limit of 400"):
        ask(client, max_tokens=10_000)


def test_error_during_stream_is_a_last_event_then_done(client, service, monkeypatch):
    model = service.backend.model
    real_generate = model.generate

    def failing_generate(*args, streamer, **kwargs):
        """A device that fails after three tokens."""

        class Failing:
            seen = 0

            def put(self, value):
                Failing.seen += 1
                if Failing.seen > 3:
                    raise RuntimeError("simulated device failure")
                streamer.put(value)

            def end(self):
                streamer.end()

        return real_generate(*args, streamer=Failing(), **kwargs)

    monkeypatch.setattr(model, "generate", failing_generate)
    body = {
        "model": "base",
        "messages": [{"role": "user", "content": QUESTION}],
        "temperature": 0,
        "stream": True,
    }
    with httpx.stream(
        "POST", f"{service.v1}/chat/completions", json=body, headers=AUTH
    ) as response:
        assert response.status_code == 200
        events = [
            line[6:] for line in response.iter_lines() if line.startswith("data: ")
        ]
    with pytest.raises(openai.APIError, match="generation failed"):
        stream_text(client)
    monkeypatch.undo()

    assert events[-1] == "[DONE]"
    error = json.loads(events[-2])["error"]
    assert error["code"] == 500 and "generation failed" in error["message"]
    assert "Traceback" not in events[-2]
    assert "choices" in json.loads(events[1])  # tokens came before the failure
    # The service keeps serving after a failed generation.
    assert ask(client).choices[0].finish_reason == "stop"


def test_api_key_is_required(service):
    for key in ("wrong-key", None):
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        response = httpx.get(f"{service.v1}/models", headers=headers)
        assert response.status_code == 401
        assert response.json()["error"]["type"] == "authentication_error"
    with openai.OpenAI(base_url=service.v1, api_key="wrong", max_retries=0) as bad:
        with pytest.raises(openai.AuthenticationError):
            bad.models.list()
    assert httpx.get(f"{service.url}/healthz").status_code == 200
    assert httpx.get(f"{service.url}/readyz").status_code == 200
    for path in ("/metrics", "/openapi.json", "/docs", "/no-such-route"):
        assert httpx.get(f"{service.url}{path}").status_code == 401


def test_metrics_count_requests_tokens_and_first_token_latency(client, service):
    ask(client)
    with pytest.raises(openai.NotFoundError):
        ask(client, model="nope")

    text = httpx.get(f"{service.url}/metrics", headers=AUTH).text

    assert _sample(text, 'rlaif_chat_requests_total{model="base",status="200"}') >= 1
    assert (
        _sample(text, 'rlaif_chat_requests_total{model="<unknown>",status="404"}') >= 1
    )
    assert _sample(text, 'rlaif_chat_generated_tokens_total{model="base"}') > 0
    assert (
        _sample(text, 'rlaif_chat_time_to_first_token_seconds_count{model="base"}') >= 1
    )
    assert _sample(text, 'rlaif_chat_adapter_loaded{adapter="veg"}') == 1
    assert _sample(text, "rlaif_chat_in_flight_requests") == 0


def _sample(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not in /metrics")


def test_client_leaving_mid_stream_is_logged_as_499_and_frees_the_model(
    client, service, scripted
):
    body = {
        "model": "veg",
        "messages": [{"role": "user", "content": QUESTION}],
        "temperature": 0,
        "max_tokens": 300,
        "stream": True,
    }
    with httpx.stream(
        "POST", f"{service.v1}/chat/completions", json=body, headers=AUTH
    ) as response:
        first = json.loads(next(response.iter_lines())[6:])
    # Leaving the block closed the connection after the first event.

    row = _logged_row(service, first["id"])
    assert row["status"] == 499 and row["completion_tokens"] < 300
    assert ask(client).choices[0].message.content == scripted.reply
    metrics = httpx.get(f"{service.url}/metrics", headers=AUTH).text
    assert _sample(metrics, "rlaif_chat_in_flight_requests") == 0
