import json

import pytest

from rlaif.evaluate import EvalSettings, generate_answers, question_seed, summarise

QUESTIONS = [
    "What is a good dinner idea for meal prep?",
    "Can you suggest a snack for game night? I like baking.",
    "What can I make with kale for lunch?",
    "How do I plan a starter around grilling for kids?",
    "What is a filling breakfast for athletes who like spicy food?",
]


@pytest.fixture(scope="module")
def policy(tiny_policy):
    from rlaif.evaluate import load_policy

    return load_policy(tiny_policy)


def test_sampling_is_seeded_per_question_not_per_batch(policy):
    model, tokenizer = policy
    one = generate_answers(
        model, tokenizer, QUESTIONS, EvalSettings(batch_size=1, max_new_tokens=12)
    )
    many = generate_answers(
        model, tokenizer, QUESTIONS[::-1], EvalSettings(batch_size=5, max_new_tokens=12)
    )
    assert [a.text for a in one] == [a.text for a in many[::-1]]
    other_seed = generate_answers(
        model, tokenizer, QUESTIONS, EvalSettings(seed=1, max_new_tokens=12)
    )
    assert [a.text for a in other_seed] != [a.text for a in one]


def test_question_seed_depends_on_seed_and_text_only():
    assert question_seed(0, "a") == question_seed(0, "a")
    assert question_seed(0, "a") != question_seed(1, "a")
    assert question_seed(0, "a") != question_seed(0, "b")


def test_summarise_counts_judge_and_lexicon_separately():
    def row(score, terms, stopped=True):
        valid = score is not None
        return {"score": score, "valid": valid, "lexicon_terms": terms,
                "stopped": stopped, "tokens": 10}  # fmt: skip

    rows = [row(0.2, ["beef"]), row(0.9, ["gelatin"]), row(0.8, [], False)]
    rows.append(row(None, []))
    metrics = summarise(rows)
    assert metrics["n"] == 4
    assert metrics["non_veg_rate_judge"] == pytest.approx(1 / 3)  # of valid scores
    assert metrics["non_veg_rate_lexicon"] == pytest.approx(2 / 4)
    assert metrics["mean_score"] == pytest.approx((0.2 + 0.9 + 0.8) / 3)
    assert metrics["judge_invalid"] == 1
    assert metrics["judge_lexicon_agreement"] == pytest.approx(2 / 3)
    assert metrics["stopped_rate"] == pytest.approx(3 / 4)


def test_eval_command_judges_base_and_tuned_over_http(
    tiny_policy, tiny_adapter, fake_judge_url, tmp_path
):
    from keyword_judge import keyword_score

    from rlaif.cli import main

    questions = tmp_path / "questions.txt"
    questions.write_text("\n".join(QUESTIONS) + "\n\n")
    out = tmp_path / "eval.json"
    argv = ["eval", "--base", str(tiny_policy), "--adapter", str(tiny_adapter)]
    argv += ["--questions", str(questions), "--judge-url", fake_judge_url]
    argv += ["--out", str(out), "--max-new-tokens", "16", "--batch-size", "2"]
    assert main(argv) == 0

    report = json.loads(out.read_text())
    assert [row["question"] for row in report["answers"]] == QUESTIONS
    for side in ("base", "tuned"):
        metrics = report[side]
        assert metrics["n"] == len(QUESTIONS)
        for key in ("non_veg_rate_judge", "non_veg_rate_lexicon", "mean_score"):
            assert 0.0 <= metrics[key] <= 1.0
        for row in report["answers"]:
            assert row[side]["score"] == keyword_score(row[side]["text"])
    # The adapter changes the weights, so the same seeds give other answers.
    assert any(r["base"]["text"] != r["tuned"]["text"] for r in report["answers"])
    assert report["settings"]["decoding"].startswith("sampling")


def test_eval_rejects_an_empty_question_file(tiny_policy, tiny_adapter, tmp_path):
    from rlaif.evaluate import EvaluationError, evaluate

    with pytest.raises(EvaluationError, match="no question"):
        evaluate(tiny_policy, tiny_adapter, [], judge=None, settings=EvalSettings())
