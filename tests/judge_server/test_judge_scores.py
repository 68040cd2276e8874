import math

import pytest

from judge_server.scores import MAX_ABS_REWARD, JudgeOutcome, reward_from_score


@pytest.mark.parametrize(
    ("score", "reward"),
    [
        (0.5, 0.0),
        (0.99, math.log(99)),
        (0.01, -math.log(99)),
        (1.0, math.log(99)),
        (0.0, -math.log(99)),
        (0.8, math.log(4)),
    ],
)
def test_reward_is_logit_of_clamped_score(score, reward):
    assert reward_from_score(score) == pytest.approx(reward)


def test_rewards_stay_finite_and_bounded():
    for i in range(0, 1001):
        reward = reward_from_score(i / 1000)
        assert math.isfinite(reward) and abs(reward) <= MAX_ABS_REWARD + 1e-12
    assert MAX_ABS_REWARD == pytest.approx(4.59512, abs=1e-5)


def test_nan_score_is_refused():
    with pytest.raises(ValueError, match="NaN"):
        reward_from_score(float("nan"))


def test_outcome_needs_score_xor_error():
    with pytest.raises(ValueError):
        JudgeOutcome(raw="x")
    with pytest.raises(ValueError):
        JudgeOutcome(raw="x", score=0.5, error="also")
    with pytest.raises(ValueError):
        JudgeOutcome(raw="x", score=1.5)
