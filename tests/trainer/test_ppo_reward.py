"""The PPO seam: TRL's own `get_reward` on our JudgeRewardModel."""

from __future__ import annotations

import math

import pytest
import torch
from trainer_fakes import QUESTIONS, keyword_score

from trainer.config import JudgeConfig
from trainer.errors import TrainerError
from trainer.judge_client import JudgeClient
from trainer.ppo_reward import JudgeRewardModel
from trainer.prompts import render_prompts
from trainer.rewards import JudgeRewards

SYSTEM = "You are a cuisine assistant."
EOS_PENALTY = 1.0


@pytest.fixture
def tokenizer(tiny_model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)


def _rewards(url: str) -> JudgeRewards:
    j = JudgeConfig(urls=[url])
    client = JudgeClient([url], j.rubric, max_downtime_s=1.0, retry_initial_s=0.01)
    return JudgeRewards(
        client,
        invalid_policy="penalty",
        invalid_penalty=-3.0,
        max_invalid_rate=0.5,
        invalid_rate_min_samples=100,
        missing_eos_penalty=EOS_PENALTY,
    )


def _left_padded_batch(tokenizer, prompts, responses, response_len):
    """Queries left-padded as TRL's collator does, responses right-padded."""
    from transformers import DataCollatorWithPadding

    collate = DataCollatorWithPadding(tokenizer)
    queries = collate([{"input_ids": list(p.input_ids)} for p in prompts])["input_ids"]
    rows = []
    for ids in responses:
        rows.append(ids + [tokenizer.pad_token_id] * (response_len - len(ids)))
    return queries, torch.tensor(rows)


def test_judge_sees_exactly_each_response_of_a_left_padded_batch(tokenizer, fake_judge):
    from trl.experimental.utils import get_reward

    url, state = fake_judge
    # "Lunch?" and the long stir-fry question differ by many tokens.
    prompts = render_prompts(tokenizer, QUESTIONS, SYSTEM, 512)
    chosen = [prompts[3], prompts[5], prompts[2], prompts[0]]
    assert len({len(p.input_ids) for p in chosen}) == 4
    texts = ["tofu bowl with rice", "grilled chicken", "", "lentil soup"]
    eos = tokenizer.eos_token_id
    encoded = [tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
    responses = [encoded[0] + [eos], encoded[1], [eos], encoded[3] + [eos]]
    length = max(len(r) for r in responses) + 3
    queries, resp = _left_padded_batch(tokenizer, chosen, responses, length)
    assert (queries[:, 0] == tokenizer.pad_token_id).any()  # really left-padded
    model = JudgeRewardModel(tokenizer, prompts, _rewards(url))

    _, scores, _ = get_reward(
        model, torch.cat([queries, resp], 1), tokenizer.pad_token_id, queries.shape[1]
    )

    # The empty answer is invalid without asking the judge: it gets the
    # configured invalid penalty, never a score.
    assert state.seen == [t for t in texts if t]
    expected = [math.log(keyword_score(t) / (1 - keyword_score(t))) for t in texts]
    expected[1] -= EOS_PENALTY  # "grilled chicken" never reached EOS
    expected[2] = -3.0  # invalid_penalty
    assert scores.tolist() == pytest.approx(expected, abs=1e-6)
    samples = model.judge.rewards.step.samples
    assert [s["prompt"] for s in samples] == [p.question for p in chosen]


def test_rollout_with_an_unregistered_prompt_is_an_error_not_a_guess(
    tokenizer, fake_judge
):
    from trl.experimental.utils import get_reward

    url, state = fake_judge
    prompts = render_prompts(tokenizer, QUESTIONS[:2], SYSTEM, 512)
    other = render_prompts(tokenizer, ["Something else entirely?"], SYSTEM, 512)
    model = JudgeRewardModel(tokenizer, prompts, _rewards(url))
    queries, resp = _left_padded_batch(tokenizer, other, [[tokenizer.eos_token_id]], 2)

    with pytest.raises(TrainerError, match="registered training prompts"):
        get_reward(model, torch.cat([queries, resp], 1), tokenizer.pad_token_id, 1)
    assert state.seen == []
