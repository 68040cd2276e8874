"""JudgeRewards: response decoding, invalid-score policy, missing-EOS penalty."""

from __future__ import annotations

import asyncio

import pytest

from trainer.errors import InvalidRateExceededError
from trainer.judge_client import JudgeResult
from trainer.rewards import JudgeRewards, decode_response


class _ScriptedClient:
    """Answers with the given results, in order (the edge is faked)."""

    def __init__(self, results: list[JudgeResult]) -> None:
        self.results = results

    async def score(self, texts):
        out, self.results = self.results[: len(texts)], self.results[len(texts) :]
        return out


VALID = JudgeResult(0.8, 1.386, True)
INVALID = JudgeResult(None, None, False, raw="??", error="unparseable")


def _rewards(results, **kwargs) -> JudgeRewards:
    options = dict(
        invalid_policy="penalty",
        invalid_penalty=-3.0,
        max_invalid_rate=0.05,
        invalid_rate_min_samples=1000,
        missing_eos_penalty=1.0,
    )
    return JudgeRewards(_ScriptedClient(results), **{**options, **kwargs})


def _score(rewards: JudgeRewards, n: int, eos=True):
    return asyncio.run(rewards.rewards(["t"] * n, ["q"] * n, [eos] * n, [3] * n))


def test_penalty_policy_gives_the_configured_penalty_and_counts_it():
    rewards = _rewards([VALID, INVALID, VALID, VALID])

    assert _score(rewards, 4) == [1.386, -3.0, 1.386, 1.386]
    assert rewards.invalid_rate == 0.25
    record = rewards.drain_step()
    assert record.invalid == 1 and record.scores == [0.8, 0.8, 0.8]


def test_drop_policy_returns_none_so_the_trainer_leaves_the_sample_out():
    rewards = _rewards([INVALID, VALID], invalid_policy="drop")

    assert _score(rewards, 2) == [None, 1.386]
    assert rewards.drain_step().rewards == [1.386]


def test_missing_eos_penalty_applies_to_valid_and_penalised_rewards():
    rewards = _rewards([VALID, INVALID])

    assert _score(rewards, 2, eos=False) == [pytest.approx(0.386), -4.0]


def test_run_stops_when_the_invalid_rate_passes_the_limit():
    rewards = _rewards([VALID] * 19 + [INVALID] * 2, invalid_rate_min_samples=20)
    _score(rewards, 19)

    with pytest.raises(InvalidRateExceededError, match="max_invalid_rate=0.05"):
        _score(rewards, 2)


def test_invalid_rate_limit_waits_for_enough_samples():
    rewards = _rewards([INVALID], invalid_rate_min_samples=2)

    assert _score(rewards, 1) == [-3.0]


def test_decoded_response_is_cut_at_eos_without_pad_or_special_tokens(tiny_model_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    body = tok("tofu soup", add_special_tokens=False)["input_ids"]
    role = tok.convert_tokens_to_ids("<|user|>")
    ids = [tok.pad_token_id, *body, role, tok.eos_token_id, *body, tok.pad_token_id]

    assert decode_response(tok, ids) == ("tofu soup", True)
    assert decode_response(tok, body + [tok.pad_token_id]) == ("tofu soup", False)
