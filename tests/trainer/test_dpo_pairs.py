"""DPO pair building: margins, ties, skips and invalid scores, over real HTTP.

The policy is faked at its edge (a `generate` that returns scripted answers
for the prompts it is given) and so is the judge (a server that scores by a
lookup table); the tokenizer, the JudgeClient, the pair rules and the file
writing in between are the real ones.
"""

from __future__ import annotations

import json
import math

import pytest
from fastapi import FastAPI, Request
from trainer_fakes import ServerThread

from rlaif.cli import main
from trainer.errors import PairsError
from trainer.judge_client import JudgeClient
from trainer.pairs import (
    Candidate,
    PairBuilder,
    PairRule,
    PreferencePair,
    choose_pair,
    read_pairs,
    write_pairs,
)
from trainer.prompts import render_prompts

SYSTEM = "You are a cook."
INVALID = None

# question -> its K=4 scripted answers: (text, judge score or INVALID, stopped)
SCRIPT = {
    "soup?": [
        ("lentil soup", 0.9, True),
        ("beef soup", 0.1, True),
        ("some soup", 0.5, True),
        ("soup soup", 0.6, True),
    ],
    "rice?": [(f"rice {n}", 0.5, True) for n in range(4)],  # a tie
    "pasta?": [
        ("pasta a", 0.6, True),
        ("pasta b", 0.5, True),
        ("pasta c", 0.55, True),
        ("pasta d", 0.45, True),
    ],  # best gap 0.15 < margin
    "bread?": [
        ("bread a", INVALID, True),
        ("bread b", INVALID, True),
        ("bread c", INVALID, True),
        ("bread d", 0.9, True),
    ],  # one valid score: no pair
    "salad?": [
        ("salad a", 0.95, False),  # best score, but cut off: never chosen
        ("salad b", 0.7, True),
        ("salad c", 0.1, True),
        ("salad d", INVALID, True),  # invalid: never rejected either
    ],
}
SCORES = {text: score for rows in SCRIPT.values() for text, score, _ in rows}


class ScriptedPolicy:
    """`generate` answering each prompt with its scripted answers, in order."""

    def __init__(self, tokenizer, rendered) -> None:
        self.tokenizer = tokenizer
        self.by_ids = {tuple(p.input_ids): SCRIPT[p.question] for p in rendered}
        self.seen_prompts: list[tuple[int, ...]] = []

    def generate(self, input_ids, attention_mask, num_return_sequences, **kwargs):
        import torch

        tok = self.tokenizer
        rows = []
        for ids, mask in zip(input_ids.tolist(), attention_mask.tolist(), strict=True):
            prompt = tuple(i for i, m in zip(ids, mask, strict=True) if m)
            self.seen_prompts.append(prompt)
            answers = self.by_ids[prompt]
            assert len(answers) == num_return_sequences
            for text, _, stopped in answers:
                new = tok.encode(text, add_special_tokens=False)
                rows.append(ids + new + ([tok.eos_token_id] if stopped else []))
        width = max(map(len, rows))
        padded = [row + [tok.pad_token_id] * (width - len(row)) for row in rows]
        return torch.tensor(padded)


@pytest.fixture(scope="module")
def table_judge():
    """A judge server scoring by the SCORES table; it counts what it saw."""
    app, seen = FastAPI(), []

    @app.post("/v1/score")
    async def score(request: Request):
        body = await request.json()
        results = []
        for text in body["texts"]:
            seen.append(text)
            s = SCORES.get(text)
            valid = s is not None
            results.append(
                {
                    "score": s,
                    "reward": math.log(s / (1 - s)) if valid else None,
                    "valid": valid,
                    "raw": str(s),
                    "error": None if valid else "unparseable",
                }
            )
        return {"rubric": body["rubric"], "judge": "table-judge", "results": results}

    server = ServerThread(app)
    yield server.url, seen
    server.stop()


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    from trainer.config import ModelConfig, TokenizerConfig
    from trainer.models import load_tokenizer

    return load_tokenizer(ModelConfig(path=str(tiny_model_dir)), TokenizerConfig())


def _build(tokenizer, judge_url, margin=0.3, batch_size=2):
    rendered = render_prompts(tokenizer, list(SCRIPT), SYSTEM, 256)
    policy = ScriptedPolicy(tokenizer, rendered)
    client = JudgeClient([judge_url], "vegetarian", retry_initial_s=0.01)
    builder = PairBuilder(
        policy,
        tokenizer,
        client,
        rule=PairRule(margin=margin),
        num_samples=4,
        max_new_tokens=16,
        temperature=1.0,
        top_p=1.0,
        batch_size=batch_size,
    )
    try:
        pairs = builder.build(rendered)
    finally:
        client.close()
    return pairs, builder.stats, policy, rendered


def test_pairs_are_best_and_worst_valid_answers_and_every_skip_is_counted(
    tokenizer, table_judge
):
    url, seen = table_judge

    pairs, stats, policy, rendered = _build(tokenizer, url)

    assert [(p.prompt, p.chosen, p.rejected) for p in pairs] == [
        ("soup?", "lentil soup", "beef soup"),
        ("salad?", "salad b", "salad c"),
    ]
    assert [(p.chosen_score, p.rejected_score) for p in pairs] == [
        (0.9, 0.1),
        (0.7, 0.1),
    ]
    assert {p.judge for p in pairs} == {"table-judge"} and stats.judge == "table-judge"
    assert stats.skipped == {"tie": 1, "below_margin": 1, "too_few_valid": 1}
    assert stats.prompts == 5 and stats.pairs == 2 and stats.samples == 20
    # The policy saw the prompts exactly as training renders them.
    assert sorted(policy.seen_prompts) == sorted(p.input_ids for p in rendered)
    assert seen.count("bread a") == 2  # an invalid score is retried once


def test_invalid_scores_never_form_a_pair_whatever_the_margin():
    candidates = [
        Candidate("good", None, True),
        Candidate("bad", None, True),
        Candidate("meh", 0.5, True),
    ]

    assert choose_pair(candidates, PairRule(margin=0.0)) == "too_few_valid"
    assert choose_pair(candidates[:2], PairRule(margin=0.0)) == "too_few_valid"


def test_a_tie_never_forms_a_pair_even_with_margin_zero():
    tie = [Candidate("a", 0.4, True), Candidate("b", 0.4, True)]
    same_text = [Candidate("a", 0.9, True), Candidate("a", 0.2, True)]

    assert choose_pair(tie, PairRule(margin=0.0)) == "tie"
    assert choose_pair(same_text, PairRule(margin=0.0)) == "tie"


def test_the_margin_is_reached_at_equality_and_missed_just_below():
    a, b = Candidate("a", 0.75, True), Candidate("b", 0.25, True)

    assert choose_pair([a, b], PairRule(margin=0.5)) == (a, b)
    assert choose_pair([a, b], PairRule(margin=0.51)) == "below_margin"


def test_score_bounds_and_finished_answers_restrict_the_pair():
    chosen, rejected = Candidate("a", 0.6, True), Candidate("b", 0.4, True)
    rule_bounds = PairRule(margin=0.1, chosen_min_score=0.7)

    assert choose_pair([chosen, rejected], rule_bounds) == "chosen_below_min_score"
    assert (
        choose_pair([chosen, rejected], PairRule(margin=0.1, rejected_max_score=0.3))
        == "rejected_above_max_score"
    )
    unfinished = [Candidate("a", 0.9, False), Candidate("b", 0.1, False)]
    assert choose_pair(unfinished, PairRule(margin=0.1)) == "no_finished_answer"


def test_written_pairs_read_back_with_their_scores_and_judge(tmp_path, tokenizer):
    pairs = [PreferencePair(prompt="q", chosen="tofu", rejected="ham", source="llm")]
    pairs.append(
        PreferencePair(
            prompt="r", chosen="beans", rejected="veal", chosen_score=0.8,
            rejected_score=0.2, judge="j", num_samples=4, num_valid=4,
        )
    )  # fmt: skip

    path = write_pairs(tmp_path / "pairs.parquet", pairs)

    assert not list(tmp_path.glob(".*.tmp"))  # the temp file was renamed
    back = read_pairs(path)
    assert back[1] == pairs[1]
    assert back[0].source == "llm" and back[0].chosen_score is None


def test_pairs_written_by_a_stronger_llm_are_read_from_jsonl(tmp_path):
    path = tmp_path / "llm.jsonl"
    rows = [
        {"prompt": "Dinner?", "chosen": "A bean chili.", "rejected": "A steak."},
        {"prompt": "Lunch?", "chosen": "Falafel.", "rejected": "Ham.", "judge": None},
    ]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))

    pairs = read_pairs(path)

    assert [p.chosen for p in pairs] == ["A bean chili.", "Falafel."]
    assert all(p.source == "llm" and p.rejected_score is None for p in pairs)


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"prompt": "q", "chosen": "a"}, "rejected=None"),
        ({"prompt": "q", "chosen": "a", "rejected": "a"}, "same text"),
        (
            {
                "prompt": "q",
                "chosen": "a",
                "rejected": "b",
                "chosen_score": 0.2,
                "rejected_score": 0.9,
            },
            "swapped",
        ),
    ],
)
def test_malformed_pairs_are_refused_with_the_line_and_reason(tmp_path, row, message):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(row) + "\n")

    with pytest.raises(PairsError, match=message) as info:
        read_pairs(path)

    assert "bad.jsonl:1" in str(info.value)


def test_dpo_pairs_cli_with_only_invalid_scores_writes_no_pair_and_exits_1(
    tiny_model_dir, questions_file, fake_judge, tmp_path
):
    """The real tiny policy samples; every score is invalid, so nothing pairs."""
    from pyarrow import parquet

    url, state = fake_judge
    state.invalid_every = 1
    out = tmp_path / "pairs.parquet"

    code = main(
        [
            "dpo", "pairs", "--policy", str(tiny_model_dir), "--prompts",
            str(questions_file), "--judge-url", url, "--out", str(out), "--k", "2",
            "--limit", "3", "--set", "generation.max_new_tokens=6",
            "--set", "judge.max_downtime_s=2",
        ]
    )  # fmt: skip

    assert code == 1
    table = parquet.read_table(out)
    assert table.num_rows == 0
    assert {"prompt", "chosen", "rejected", "chosen_score", "judge"} <= set(
        table.column_names
    )
    stats = json.loads((tmp_path / "pairs.stats.json").read_text())
    assert stats["skipped"] == {"too_few_valid": 3} and stats["samples"] == 6
    assert stats["invalid_scores"] == 6
    assert len(state.seen) == 12  # 3 prompts x 2 answers, each retried once
