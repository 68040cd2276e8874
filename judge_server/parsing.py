"""Read a score from the judge's generated reply, or say why there is none.

The rubric asks for the score first and nothing else, on the 0..1 scale.
A reply counts only when it holds one clear number in [0, 1]: the same
number repeated ("0.8. Final score: 0.8") is fine, anything else is invalid
with a reason, never a guess. In particular we do not read "8/10" as 0.8 or
"85" as 0.85 (guessing the scale), do not take the first of several
competing numbers, do not clamp 1.5 to 1, and do not turn a refusal, an
error string or an empty reply into a default score.

Only the generated text is parsed; backends never pass the prompt here, so
the rubric's example scores cannot leak into a result.
"""

from __future__ import annotations

import re

from judge_server.scores import JudgeOutcome

# A number as a judge writes one: 0.85, .85, 1, 1.0, -0.2, 8/10, 85%.
_NUMBER = re.compile(
    r"(?<![\w.])(?P<sign>[-+])?(?P<value>\d+(?:\.\d+)?|\.\d+)"
    r"(?P<fraction>\s*/\s*\d+(?:\.\d+)?)?(?P<percent>\s*%)?"
)
_TRUNCATED = re.compile(r"^[01]\.$")
_MAX_RAW_IN_ERROR = 60


def parse_score(reply: str, tokens: int = 0) -> JudgeOutcome:
    """The outcome of one judge reply of ``tokens`` generated tokens.

    See the module docstring for the rules.
    """
    text = reply.strip()
    if not text:
        return JudgeOutcome.invalid(reply, "empty reply", "empty_reply", tokens)
    if _TRUNCATED.match(text):
        error = f"truncated score {text!r}: raise max_new_tokens"
        return JudgeOutcome.invalid(reply, error, "truncated", tokens)

    matches = list(_NUMBER.finditer(text))
    if not matches:
        error = f"no score in reply {_excerpt(text)}"
        return JudgeOutcome.invalid(reply, error, "no_score", tokens)
    values = set()
    for match in matches:
        problem = _unsupported_form(match)
        if problem:
            return JudgeOutcome.invalid(reply, *problem, tokens)
        values.add(float(match.group("value")) * _sign(match))
    if len(values) > 1:
        listed = ", ".join(sorted(m.group(0).strip() for m in matches))
        error = f"several competing numbers ({listed})"
        return JudgeOutcome.invalid(reply, error, "competing_numbers", tokens)

    (value,) = values
    if not 0.0 <= value <= 1.0:
        error = f"score {value:g} is outside 0..1"
        return JudgeOutcome.invalid(reply, error, "out_of_range", tokens)
    return JudgeOutcome(raw=reply, score=value, generated_tokens=tokens)


def _unsupported_form(match: re.Match[str]) -> tuple[str, str] | None:
    """(error, reason) for a number written on another scale."""
    written = match.group(0).strip()
    if match.group("fraction"):
        return f"fraction {written!r} is not on the 0..1 scale", "fraction"
    if match.group("percent"):
        return f"percentage {written!r} is not on the 0..1 scale", "percentage"
    return None


def _sign(match: re.Match[str]) -> float:
    return -1.0 if match.group("sign") == "-" else 1.0


def _excerpt(text: str) -> str:
    if len(text) <= _MAX_RAW_IN_ERROR:
        return repr(text)
    return repr(text[:_MAX_RAW_IN_ERROR] + "...")
