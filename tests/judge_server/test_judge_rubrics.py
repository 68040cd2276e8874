import json
from pathlib import Path

import pytest

from judge_server.errors import JudgeConfigError
from judge_server.rubrics import load_rubric, load_rubrics

ROOT = Path(__file__).resolve().parents[2]
EVAL = ROOT / "data" / "judge_eval.jsonl"


@pytest.fixture(scope="module")
def vegetarian():
    return load_rubrics(ROOT / "configs" / "rubrics")["vegetarian"]


@pytest.fixture(scope="module")
def eval_rows():
    return [json.loads(line) for line in EVAL.read_text().splitlines() if line]


def test_vegetarian_rubric_carries_instruction_and_worked_examples(vegetarian):
    assert "0.01 to 0.99" in vegetarian.instruction
    assert "score first and nothing else" in vegetarian.instruction
    assert vegetarian.good_example.score == 0.99
    assert vegetarian.bad_example.score == 0.01
    assert {e.label for e in vegetarian.examples} == {0, 1}


def test_eval_set_is_large_balanced_and_has_hard_cases(eval_rows):
    labels = [row["label"] for row in eval_rows]
    assert len(eval_rows) >= 200
    assert labels.count(1) == labels.count(0)
    text = " ".join(row["text"].lower() for row in eval_rows)
    for hard in ("seitan", "jackfruit", "plant-based", "fish sauce", "gelatin"):
        assert hard in text
    for hard in ("lard", "anchov", "chicken stock"):
        assert hard in text


def test_no_eval_text_is_a_rubric_example(vegetarian, eval_rows):
    def norm(text: str) -> str:
        return " ".join(text.lower().split())

    taught = {norm(e.text) for e in (*vegetarian.examples, *vegetarian.phrases)}
    taught |= {norm(vegetarian.good_example.text), norm(vegetarian.bad_example.text)}
    leaked = [row["text"] for row in eval_rows if norm(row["text"]) in taught]
    assert leaked == []


def test_rubric_name_must_match_file(tmp_path):
    path = tmp_path / "strict.yaml"
    path.write_text(
        "name: other\ndescription: d\ninstruction: i\n"
        "good_example: {text: a, score: 0.9}\nbad_example: {text: b, score: 0.1}\n"
    )
    with pytest.raises(JudgeConfigError, match="file name"):
        load_rubric(path)


def test_rubric_with_one_label_only_is_refused(tmp_path):
    path = tmp_path / "one.yaml"
    path.write_text(
        "description: d\ninstruction: i\n"
        "good_example: {text: a, score: 0.9}\nbad_example: {text: b, score: 0.1}\n"
        "examples: [{text: x, label: 1}]\n"
    )
    with pytest.raises(JudgeConfigError, match="both labels"):
        load_rubric(path)


def test_empty_rubric_folder_says_what_to_set(tmp_path):
    with pytest.raises(JudgeConfigError, match="rubrics_dir"):
        load_rubrics(tmp_path)
