"""The CPU default judge on the real MiniLM model shipped on PyPI."""

import json
from pathlib import Path

import pytest

from judge_server.backends.base import JudgeRequest
from judge_server.backends.embedding import candidate_phrases
from judge_server.rubrics import NegationCues

ROOT = Path(__file__).resolve().parents[2]
CUES = NegationCues(scope_words=4, words=("without", "instead"), suffixes=("-free",))

# Answers like the tiny policy's, none of them in the eval set or the rubric.
POLICY_PAIRS = [
    ("Try a lentil soup with bread.", "Try a beef soup with bread."),
    ("Make a tofu stir-fry with noodles.", "Make a pork stir-fry with noodles."),
    ("A bean salad with lemon is quick.", "A tuna salad with lemon is quick."),
    ("Try a mushroom pizza.", "Try a ham pizza."),
    ("Cook a vegetable stew with potatoes.", "Cook a lamb stew with potatoes."),
    ("Try spinach pasta with garlic.", "Try shrimp pasta with garlic."),
]


def judge(backend, rubrics, texts):
    rubric = rubrics["vegetarian"]
    return backend.judge_sync([JudgeRequest(rubric, text) for text in texts])


def test_negated_ingredients_are_marked():
    phrases = {
        p.text: p.negated
        for p in candidate_phrases(
            "Use agar instead of gelatin, and gelatin-free sweets; add chicken.", CUES
        )
    }
    assert phrases["gelatin"] is True
    assert phrases["gelatin-free"] is True
    assert phrases["chicken"] is False
    assert phrases["agar"] is False


def test_accuracy_on_the_eval_set_is_at_least_090(embedding_backend, rubrics):
    rows = [json.loads(line) for line in (ROOT / "data/judge_eval.jsonl").open()]
    outcomes = judge(embedding_backend, rubrics, [row["text"] for row in rows])
    correct = sum(
        (o.score >= 0.5) == (row["label"] == 1)
        for o, row in zip(outcomes, rows, strict=True)
    )
    assert correct / len(rows) >= 0.90
    assert all(o.valid and 0.01 <= o.score <= 0.99 for o in outcomes)


@pytest.mark.parametrize(("good", "bad"), POLICY_PAIRS)
def test_short_policy_answers_are_told_apart(embedding_backend, rubrics, good, bad):
    good_outcome, bad_outcome = judge(embedding_backend, rubrics, [good, bad])
    assert good_outcome.score > 0.5 > bad_outcome.score


def test_raw_names_the_evidence_or_the_classifier(embedding_backend, rubrics):
    bad, good = judge(
        embedding_backend,
        rubrics,
        [
            "Stir in a little fish sauce.",
            "Use vegetable stock instead of chicken stock.",
        ],
    )
    assert "evidence" in bad.raw and "fish" in bad.raw
    assert good.score > 0.5 and "p(good)" in good.raw
