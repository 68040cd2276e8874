import json
from pathlib import Path

import pytest

from rlaif.cli import main
from rlaif.dedupe import leaked_pairs
from rlaif.prompts import PromptSetError, split_questions

REPO = Path(__file__).resolve().parents[2]


def _generate(out: Path, *extra: str) -> tuple[list[str], list[str]]:
    argv = ["prompts", "generate", "--source", "template", "--seed", "5"]
    argv += ["--topics", str(REPO / "configs/prompts/topics.txt")]
    argv += ["--n-train", "120", "--n-holdout", "30", "--out-dir", str(out), *extra]
    assert main(argv) == 0
    return (
        (out / "train.txt").read_text().splitlines(),
        (out / "holdout.txt").read_text().splitlines(),
    )


def test_template_prompts_have_no_holdout_leakage(tmp_path):
    train, holdout = _generate(tmp_path / "a")
    assert (len(train), len(holdout)) == (120, 30)
    assert leaked_pairs(train, holdout) == []
    assert len(set(train)) == len(train)


def test_template_prompts_are_reproducible_from_the_seed(tmp_path):
    assert _generate(tmp_path / "a") == _generate(tmp_path / "b")


def test_excluded_questions_never_reach_the_holdout(tmp_path):
    train, holdout = _generate(tmp_path / "a")
    # Excluding the first run's hold-out pushes those questions out of it.
    exclude = tmp_path / "exclude.jsonl"
    exclude.write_text("".join(json.dumps({"question": q}) + "\n" for q in holdout))
    _, second_holdout = _generate(tmp_path / "b", "--exclude", str(exclude))
    assert leaked_pairs(holdout, second_holdout) == []


def test_split_refuses_when_too_few_unique_questions():
    candidates = ["How do I cook rice?"] * 20 + ["What is tempeh?"]
    with pytest.raises(PromptSetError, match="only 2 unique questions"):
        split_questions(candidates, n_train=5, n_holdout=1, seed=0)


def test_missing_topics_file_is_a_clear_error(tmp_path, capsys):
    argv = ["prompts", "generate", "--topics", str(tmp_path / "nope.txt")]
    argv += ["--out-dir", str(tmp_path / "out")]
    assert main(argv) == 2
    assert "cannot read topics file" in capsys.readouterr().err


@pytest.mark.parametrize(("n_train", "n_holdout"), [("0", "10"), ("10", "-5")])
def test_impossible_counts_are_refused_before_any_work(tmp_path, n_train, n_holdout):
    argv = ["prompts", "generate", "--n-train", n_train, "--n-holdout", n_holdout]
    argv += ["--out-dir", str(tmp_path / "out")]

    assert main(argv) == 2
    assert not (tmp_path / "out").exists()
