"""The openai backend against a real local OpenAI-compatible HTTP server."""

import asyncio

import pytest
from fake_openai import build_fake_openai
from fastapi.testclient import TestClient
from judge_fakes import serve_in_thread

from judge_server.api import create_app
from judge_server.backends.base import JudgeRequest
from judge_server.backends.openai_backend import OpenAIBackend
from judge_server.config import OpenAIConfig, load_config
from judge_server.errors import BackendUnavailableError

TEXTS = ["Try a chickpea curry.", "Try a chicken curry.", "please refuse this"]


@pytest.fixture(scope="module")
def fake():
    app = build_fake_openai()
    with serve_in_thread(app) as url:
        yield app, url


@pytest.fixture(autouse=True)
def reset(fake):
    app, _ = fake
    app.state.fail_next, app.state.key, app.state.calls = 0, None, []


def judge(url, rubrics, texts=TEXTS, **options):
    config = OpenAIConfig(
        base_url=f"{url}/v1", model="judge-70b", backoff_s=0, **options
    )
    backend = OpenAIBackend(config)

    async def scenario():
        await backend.start(rubrics)
        try:
            rubric = rubrics["vegetarian"]
            return await backend.judge([JudgeRequest(rubric, t) for t in texts])
        finally:
            await backend.close()

    return asyncio.run(scenario())


def test_completions_logprob_mode_gives_expected_scores(fake, rubrics):
    app, url = fake
    good, bad, refused = judge(url, rubrics)
    assert good.score == pytest.approx((0.8 * 0.95 + 0.15 * 0.85) / 0.95, abs=1e-3)
    assert bad.score < 0.3 < 0.7 < good.score
    assert not refused.valid and refused.reason == "low_score_mass"
    assert app.state.calls == ["/v1/completions"]  # one request per batch


def test_completions_text_mode_parses_the_reply(fake, rubrics):
    _, url = fake
    good, bad, refused = judge(url, rubrics, mode="text")
    assert (good.score, bad.score) == (0.9, 0.1)
    assert not refused.valid and refused.raw == " I cannot score this."


def test_chat_logprob_mode_reads_the_digit_after_zero_point(fake, rubrics):
    _, url = fake
    good, bad, refused = judge(url, rubrics, endpoint="chat")
    assert good.score > 0.8 and bad.score < 0.3
    assert "probabilities" in good.raw
    assert not refused.valid and refused.reason == "no_score"


def test_chat_text_mode(fake, rubrics):
    _, url = fake
    good, bad, _ = judge(url, rubrics, endpoint="chat", mode="text")
    assert (good.score, bad.score) == (0.95, 0.15)


def test_server_errors_are_retried(fake, rubrics):
    app, url = fake
    app.state.fail_next = 2
    good, _, _ = judge(url, rubrics, max_retries=3)
    assert good.valid
    assert len(app.state.calls) == 3


def test_exhausted_retries_fail_the_batch_not_fake_scores(fake, rubrics):
    app, url = fake
    app.state.fail_next = 10
    with pytest.raises(BackendUnavailableError, match="failed 2 times"):
        judge(url, rubrics, max_retries=1)


def test_exhausted_retries_answer_503_over_http(fake, rubrics, tmp_path):
    app, url = fake
    app.state.fail_next = 10
    config = tmp_path / "judge.yaml"
    config.write_text(
        "backend: openai\n"
        f"openai: {{base_url: '{url}/v1', model: m, max_retries: 1, backoff_s: 0}}\n"
        f"request_log: {{enabled: false}}\nserver: {{log_dir: {tmp_path}}}\n"
    )
    with TestClient(create_app(load_config(config))) as client:
        response = client.post("/v1/score", json={"texts": ["a"]})
    assert response.status_code == 503
    assert "failed 2 times" in response.json()["error"]["message"]


def test_key_comes_from_the_named_environment_variable(fake, rubrics, monkeypatch):
    app, url = fake
    app.state.key = "sk-judge"
    monkeypatch.setenv("JUDGE_TEST_KEY", "sk-judge")
    good, _, _ = judge(url, rubrics, api_key_env="JUDGE_TEST_KEY")
    assert good.valid
    monkeypatch.delenv("JUDGE_TEST_KEY")
    unauthorised = judge(url, rubrics, api_key_env="JUDGE_TEST_KEY")[0]
    assert not unauthorised.valid and "401" in unauthorised.error


def test_prompt_over_the_context_is_invalid_with_the_endpoint_message(fake, rubrics):
    _, url = fake
    (long_one,) = judge(url, rubrics, texts=["x" * 7000])
    assert not long_one.valid and "context length" in long_one.error
