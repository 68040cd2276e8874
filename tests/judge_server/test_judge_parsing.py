import pytest

from judge_server.parsing import parse_score

# (judge reply, expected score or None, reason when invalid)
REPLIES = [
    ("0.85", 0.85, None),
    ("0.99", 0.99, None),
    ("0.01", 0.01, None),
    (" 0.7\n", 0.7, None),
    ("0.9.", 0.9, None),
    (".75", 0.75, None),
    ("1", 1.0, None),
    ("0", 0.0, None),
    ("1.0", 1.0, None),
    ("Score: 0.92", 0.92, None),
    ("0.2 - the answer recommends chicken stock.", 0.2, None),
    ("0.95\n\nThe text is strictly vegetarian.", 0.95, None),
    ("I would rate this 0.3.", 0.3, None),
    ("0.8. Final score: 0.8", 0.8, None),
    ("**0.88**", 0.88, None),
    ("The score is 0.05 because it contains anchovies.", 0.05, None),
    ("", None, "empty_reply"),
    ("   \n", None, "empty_reply"),
    ("I'm sorry, but I can't evaluate this text.", None, "no_score"),
    ("As an AI language model, I cannot judge food.", None, "no_score"),
    ("Error: the model is overloaded, please retry later", None, "no_score"),
    ("Vegetarian.", None, "no_score"),
    ("zero point nine", None, "no_score"),
    ("8/10", None, "fraction"),
    ("Score: 4 / 5", None, "fraction"),
    ("85%", None, "percentage"),
    ("85", None, "out_of_range"),
    ("1.5", None, "out_of_range"),
    ("-0.2", None, "out_of_range"),
    ("Error 429: rate limit exceeded", None, "out_of_range"),
    ("0.2 or 0.8, depending on the stock used", None, "competing_numbers"),
    ("0.9\n1. It is vegetarian. 2. It is helpful.", None, "competing_numbers"),
    ("Between 0.6 and 0.7", None, "competing_numbers"),
    ("0.", None, "truncated"),
    ("1.", None, "truncated"),
]


@pytest.mark.parametrize(("reply", "score", "reason"), REPLIES)
def test_judge_reply_is_parsed_or_invalid_with_a_reason(reply, score, reason):
    outcome = parse_score(reply, tokens=3)
    assert outcome.raw == reply
    assert outcome.generated_tokens == 3
    if score is None:
        assert not outcome.valid
        assert outcome.score is None
        assert outcome.reason == reason
        assert outcome.error
    else:
        assert outcome.valid, outcome.error
        assert outcome.score == pytest.approx(score)
        assert outcome.error is None


def test_table_has_enough_realistic_replies():
    assert len(REPLIES) >= 30
    assert sum(score is None for _, score, _ in REPLIES) >= 15


def test_unparseable_judge_reply_is_invalid_not_default():
    outcome = parse_score("I cannot answer that.")
    assert outcome.score is None and "no score" in outcome.error
