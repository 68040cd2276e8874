"""Logprob mode: the score as an expectation over the judge's next token.

The prompt ends with the judge's reply already begun, ``0.``, so the next
token is the first decimal digit. With ``p(d)`` the probability of digit
``d``, the score is ``sum_d p(d) * (d + 0.5) / 10 / sum_d p(d)``: one
forward step per text instead of generating a whole reply, and a continuous
score even from a judge that rounds to one decimal. ``(d + 0.5) / 10`` is
the middle of the interval the digit stands for ("0.9" covers 0.90-0.99).

When the digits together carry little probability (the judge wanted to
write something else: a refusal, "1.0", a word) the outcome is invalid
rather than a renormalised guess.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from judge_server.scores import JudgeOutcome

REPLY_PREFIX = "0."
DIGITS = tuple(str(d) for d in range(10))


class DigitTokensError(NotImplementedError):
    """The tokenizer does not spell each digit after "0." as one token."""


def digit_token_ids(tokenizer: Any, probe: str = "Score: " + REPLY_PREFIX) -> list[int]:
    """The token id of each digit 0-9 as it follows ``0.``.

    Raises DigitTokensError when a digit is not exactly one token there
    (some tokenizers merge "0.85" into multi-digit tokens); logprob mode
    is not supported with such a tokenizer.
    """
    base = tokenizer(probe, add_special_tokens=False)["input_ids"]
    ids = []
    for digit in DIGITS:
        full = tokenizer(probe + digit, add_special_tokens=False)["input_ids"]
        if len(full) != len(base) + 1 or full[: len(base)] != base:
            raise DigitTokensError(
                f"logprob mode is not supported with this tokenizer: digit "
                f"{digit!r} after {REPLY_PREFIX!r} is not a single token"
            )
        ids.append(full[-1])
    if len(set(ids)) != len(ids):
        raise DigitTokensError(
            "logprob mode is not supported with this tokenizer: digits share tokens"
        )
    return ids


def outcome_from_digit_probs(
    probs: Mapping[int, float], min_mass: float
) -> JudgeOutcome:
    """The expected score from ``{digit: probability}``, or invalid."""
    mass = math.fsum(probs.values())
    if not math.isfinite(mass) or mass < min_mass:
        return JudgeOutcome.invalid(
            raw=_describe(probs, mass),
            error=(
                f"the score digits carry only {mass:.0%} of the judge's next-token "
                f"probability (minimum {min_mass:.0%}): the judge did not answer "
                "with a score"
            ),
            reason="low_score_mass",
            generated_tokens=1,
        )
    score = math.fsum(p * (d + 0.5) / 10 for d, p in probs.items()) / mass
    return JudgeOutcome(raw=_describe(probs, mass), score=score, generated_tokens=1)


def _describe(probs: Mapping[int, float], mass: float) -> str:
    top = sorted(probs.items(), key=lambda item: -item[1])[:3]
    listed = ", ".join(f"0.{d}: {p:.3f}" for d, p in top)
    return f"{REPLY_PREFIX}<digit> probabilities {listed}; digit mass {mass:.2f}"
