"""Judge outcomes and the reward they map to.

A backend turns one text into a :class:`JudgeOutcome`: a score in [0, 1]
with the raw judge reply, or no score and the reason. The reward is the
logit of the score, ``log(s / (1 - s))``, with ``s`` clamped to
[0.01, 0.99] first, so a judge that answers 0 or 1 gives +-4.595 rather than
an infinite reward that would poison a whole PPO batch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

SCORE_FLOOR = 0.01
SCORE_CEILING = 0.99
MAX_ABS_REWARD = math.log(SCORE_CEILING / (1 - SCORE_CEILING))


@dataclass(frozen=True)
class JudgeOutcome:
    """One text's judgement; exactly one of ``score`` and ``error`` is set."""

    raw: str
    score: float | None = None
    error: str | None = None
    generated_tokens: int = 0
    #: A short, fixed code for ``error`` (metrics label): "empty_reply", ...
    reason: str | None = None

    def __post_init__(self) -> None:
        if (self.score is None) == (self.error is None):
            raise ValueError(
                f"JudgeOutcome needs exactly one of score and error, got "
                f"score={self.score!r} error={self.error!r}"
            )
        if self.score is not None and not 0.0 <= self.score <= 1.0:
            raise ValueError(f"score must be in [0, 1], got {self.score!r}")

    @property
    def valid(self) -> bool:
        return self.score is not None

    @classmethod
    def invalid(
        cls, raw: str, error: str, reason: str, generated_tokens: int = 0
    ) -> JudgeOutcome:
        return cls(
            raw=raw, error=error, reason=reason, generated_tokens=generated_tokens
        )


def reward_from_score(score: float) -> float:
    """``log(s / (1 - s))`` of the score clamped to [0.01, 0.99]."""
    if math.isnan(score):
        raise ValueError("score is NaN; an invalid score must not become a reward")
    clamped = min(max(score, SCORE_FLOOR), SCORE_CEILING)
    return math.log(clamped / (1.0 - clamped))
