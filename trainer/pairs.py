"""Preference pairs for offline DPO: sampled by the policy, ranked by the judge.

`build_pairs` has the policy answer every prompt `dpo.num_samples` (K) times,
with the chat template and system prompt exactly as training renders them,
and has the judge score each answer. A prompt yields one pair (best, worst)
when the score gap reaches `dpo.margin`; otherwise it is skipped and the
reason counted (`PairStats.skipped`). The rules, in `choose_pair`:

- an answer without a valid judge score, or with no text, never enters a
  pair (no default score is ever invented for it);
- the chosen answer must have reached EOS: a pair must not teach the policy
  that a cut-off answer is good (a cut-off answer may still be rejected);
- equal scores (or equal texts) are a tie and never form a pair, whatever
  the margin.

The same file format carries pairs written by a stronger LLM (a good and a
bad answer per question): `chosen_score`, `rejected_score` and `judge` may
be null there, `source` says where a pair came from. `read_pairs` checks a
file of either kind before training. Files are written under a temporary
name and renamed, so a reader never sees half a file.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from trainer.errors import PairsError
from trainer.prompts import RenderedPrompt
from trainer.rewards import decode_response

logger = logging.getLogger(__name__)

REQUIRED_COLUMNS = ("prompt", "chosen", "rejected")
SOURCES = ("policy", "llm")


def pairs_schema():
    """The Parquet schema of a pairs file (scores and judge are nullable)."""
    import pyarrow as pa

    return pa.schema(
        [
            ("prompt", pa.string()),
            ("chosen", pa.string()),
            ("rejected", pa.string()),
            ("chosen_score", pa.float64()),
            ("rejected_score", pa.float64()),
            ("judge", pa.string()),
            ("source", pa.string()),
            ("num_samples", pa.int64()),
            ("num_valid", pa.int64()),
        ]
    )


@dataclass(frozen=True)
class Candidate:
    """One sampled answer; `score` is None when the judge gave no valid score."""

    text: str
    score: float | None
    stopped: bool


@dataclass(frozen=True, kw_only=True)
class PairRule:
    margin: float = 0.2
    chosen_min_score: float | None = None
    rejected_max_score: float | None = None


@dataclass(frozen=True, kw_only=True)
class PreferencePair:
    """One row of a pairs file."""

    prompt: str
    chosen: str
    rejected: str
    chosen_score: float | None = None
    rejected_score: float | None = None
    judge: str | None = None
    source: str = "policy"
    num_samples: int | None = None
    num_valid: int | None = None


@dataclass
class PairStats:
    """What a pair-building run did, written next to the pairs file."""

    prompts: int = 0
    pairs: int = 0
    samples: int = 0
    invalid_scores: int = 0
    skipped: Counter = field(default_factory=Counter)
    judge: str | None = None
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["skipped"] = dict(sorted(self.skipped.items()))
        data["skipped_total"] = sum(self.skipped.values())
        return data


def choose_pair(
    candidates: Sequence[Candidate], rule: PairRule
) -> tuple[Candidate, Candidate] | str:
    """(chosen, rejected), or the reason the prompt yields no pair."""
    valid = [c for c in candidates if c.score is not None and c.text.strip()]
    if len(valid) < 2:
        return "too_few_valid"
    finished = [c for c in valid if c.stopped]
    if not finished:
        return "no_finished_answer"
    best = max(finished, key=lambda c: c.score)
    worst = min((c for c in valid if c is not best), key=lambda c: c.score)
    gap = best.score - worst.score
    if gap == 0 or best.text == worst.text:
        return "tie"
    if gap < rule.margin or gap < 0:
        return "below_margin"
    if rule.chosen_min_score is not None and best.score < rule.chosen_min_score:
        return "chosen_below_min_score"
    if rule.rejected_max_score is not None and worst.score > rule.rejected_max_score:
        return "rejected_above_max_score"
    return best, worst


def sample_answers(
    model,
    tokenizer,
    prompts: Sequence[RenderedPrompt],
    *,
    num_samples: int,
    max_new_tokens: int,
    temperature: float,
    top_p: float,
) -> list[list[tuple[str, bool]]]:
    """`num_samples` (text, reached_eos) answers per prompt, sampled in one call.

    Prompts arrive as the token ids training uses and are left-padded here,
    so the model sees exactly what it sees under PPO, GRPO and RLOO.
    """
    import torch

    width = max(len(p.input_ids) for p in prompts)
    pad = tokenizer.pad_token_id
    ids = [[pad] * (width - len(p.input_ids)) + list(p.input_ids) for p in prompts]
    mask = [[0] * (width - len(p.input_ids)) + [1] * len(p.input_ids) for p in prompts]
    with torch.no_grad():
        output = model.generate(
            input_ids=torch.tensor(ids),
            attention_mask=torch.tensor(mask),
            do_sample=True,
            num_return_sequences=num_samples,
            max_new_tokens=max_new_tokens,
            temperature=temperature,
            top_p=top_p,
            top_k=0,  # plain temperature sampling, as the RL trainers sample
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=pad,
        )
    answers = []
    for row in output[:, width:].tolist():
        text, stopped = decode_response(tokenizer, row)
        answers.append((text.strip(), stopped))
    return [
        answers[start : start + num_samples]
        for start in range(0, len(answers), num_samples)
    ]


class PairBuilder:
    """Samples, judges and pairs answers, batch by batch."""

    def __init__(
        self,
        model,
        tokenizer,
        client,
        *,
        rule: PairRule,
        num_samples: int,
        max_new_tokens: int,
        temperature: float,
        top_p: float,
        batch_size: int,
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.client = client
        self.rule = rule
        self.num_samples = num_samples
        self.sampling = dict(
            num_samples=num_samples,
            max_new_tokens=max_new_tokens,
            temperature=temperature,
            top_p=top_p,
        )
        self.batch_size = batch_size
        self.stats = PairStats()

    def build(self, prompts: Sequence[RenderedPrompt]) -> list[PreferencePair]:
        """Pairs for every prompt that yields one, in prompt order."""
        from tqdm.auto import tqdm

        started = time.perf_counter()
        pairs: list[PreferencePair] = []
        with tqdm(total=len(prompts), desc="dpo pairs", unit="prompt") as bar:
            for start in range(0, len(prompts), self.batch_size):
                batch = prompts[start : start + self.batch_size]
                pairs.extend(self._build_batch(batch))
                bar.update(len(batch))
                bar.set_postfix(
                    pairs=len(pairs), skipped=self.stats.prompts - len(pairs)
                )
        self.stats.pairs = len(pairs)
        self.stats.judge = self.client.judge_name
        self.stats.seconds = round(time.perf_counter() - started, 2)
        return pairs

    def _build_batch(self, batch: Sequence[RenderedPrompt]) -> list[PreferencePair]:
        answers = sample_answers(self.model, self.tokenizer, batch, **self.sampling)
        texts = [text for group in answers for text, _ in group]
        results = self.client.score_sync(texts)
        self.stats.prompts += len(batch)
        self.stats.samples += len(texts)
        self.stats.invalid_scores += sum(not r.valid for r in results)
        pairs = []
        for index, (prompt, group) in enumerate(zip(batch, answers, strict=True)):
            scored = results[index * self.num_samples : (index + 1) * self.num_samples]
            candidates = [
                Candidate(text, result.score if result.valid else None, stopped)
                for (text, stopped), result in zip(group, scored, strict=True)
            ]
            choice = choose_pair(candidates, self.rule)
            if isinstance(choice, str):
                self.stats.skipped[choice] += 1
                continue
            chosen, rejected = choice
            pairs.append(
                PreferencePair(
                    prompt=prompt.question,
                    chosen=chosen.text,
                    rejected=rejected.text,
                    chosen_score=chosen.score,
                    rejected_score=rejected.score,
                    judge=self.client.judge_name,
                    source="policy",
                    num_samples=len(candidates),
                    num_valid=sum(c.score is not None for c in candidates),
                )
            )
        return pairs


# ----------------------------------------------------------------- files


def write_pairs(
    path: str | Path, pairs: Sequence[PreferencePair], stats: PairStats | None = None
) -> Path:
    """Write the pairs (and `<name>.stats.json`) atomically; returns the path."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pylist([asdict(p) for p in pairs], schema=pairs_schema())
    tmp = path.with_name(f".{path.name}.tmp")
    pq.write_table(table, tmp)
    os.replace(tmp, path)
    if stats is not None:
        stats_path = stats_path_for(path)
        tmp = stats_path.with_name(f".{stats_path.name}.tmp")
        tmp.write_text(json.dumps(stats.as_dict(), indent=2) + "\n")
        os.replace(tmp, stats_path)
    return path


def stats_path_for(path: Path) -> Path:
    return path.with_name(path.stem + ".stats.json")


def read_pairs(path: str | Path) -> list[PreferencePair]:
    """Pairs from a .parquet or .jsonl file, checked row by row."""
    path = Path(path)
    if not path.is_file():
        raise PairsError(
            f"pairs file {str(path)!r} does not exist: run `rlaif dpo pairs` or "
            "set dpo.pairs to a file of prompt/chosen/rejected rows"
        )
    rows = _read_rows(path)
    if not rows:
        raise PairsError(f"pairs file {str(path)!r} holds no pairs")
    return [_pair_from_row(path, number, row) for number, row in enumerate(rows, 1)]


def _read_rows(path: Path) -> list[dict[str, Any]]:
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        return pq.read_table(path).to_pylist()
    if path.suffix == ".jsonl":
        rows = []
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except ValueError as exc:
                raise PairsError(f"{path}:{number}: not a JSON object: {exc}") from exc
        return rows
    raise PairsError(
        f"pairs file {str(path)!r} must end in .parquet or .jsonl, not {path.suffix!r}"
    )


def _pair_from_row(path: Path, number: int, row: Any) -> PreferencePair:
    where = f"{path}:{number}"
    if not isinstance(row, dict):
        raise PairsError(f"{where}: expected an object with {REQUIRED_COLUMNS}")
    for column in REQUIRED_COLUMNS:
        value = row.get(column)
        if not isinstance(value, str) or not value.strip():
            raise PairsError(f"{where}: {column}={value!r} must be a non-empty string")
    if row["chosen"].strip() == row["rejected"].strip():
        raise PairsError(f"{where}: chosen and rejected are the same text")
    scores = [row.get("chosen_score"), row.get("rejected_score")]
    for name, value in zip(("chosen_score", "rejected_score"), scores, strict=True):
        if value is not None and not (
            isinstance(value, int | float) and math.isfinite(value)
        ):
            raise PairsError(f"{where}: {name}={value!r} must be a number or null")
    if None not in scores and scores[0] < scores[1]:
        raise PairsError(
            f"{where}: chosen_score={scores[0]} is below rejected_score={scores[1]}: "
            "the pair is swapped"
        )
    source = row.get("source") or ("policy" if None not in scores else "llm")
    return PreferencePair(
        prompt=row["prompt"].strip(),
        chosen=row["chosen"].strip(),
        rejected=row["rejected"].strip(),
        chosen_score=scores[0],
        rejected_score=scores[1],
        judge=row.get("judge"),
        source=source,
        num_samples=row.get("num_samples"),
        num_valid=row.get("num_valid"),
    )


# ---------------------------------------------------------------- driver


def build_pairs(config, out: str | Path, client=None) -> PairStats:
    """Pairs for `config.prompts.train` from the policy at `config.model.path`.

    Uses the config's tokenizer, system prompt, sampling settings, judge and
    `dpo` section; writes `out` and its stats file; returns the stats.
    """
    from transformers import set_seed

    from trainer.models import load_policy, load_tokenizer
    from trainer.prompts import load_questions, render_prompts
    from trainer.run import make_judge_client

    set_seed(config.optim.seed)
    if config.optim.torch_threads:
        import torch

        torch.set_num_threads(config.optim.torch_threads)
    tokenizer = load_tokenizer(config.model, config.tokenizer)
    p = config.prompts
    questions = load_questions(p.train, p.limit)
    prompts = render_prompts(tokenizer, questions, p.system_prompt, p.max_prompt_tokens)
    model = load_policy(config.model, tokenizer)
    model.eval()
    own_client = client is None
    client = client or make_judge_client(config)
    d, g = config.dpo, config.generation
    builder = PairBuilder(
        model,
        tokenizer,
        client,
        rule=PairRule(
            margin=d.margin,
            chosen_min_score=d.chosen_min_score,
            rejected_max_score=d.rejected_max_score,
        ),
        num_samples=d.num_samples,
        max_new_tokens=g.max_new_tokens,
        temperature=g.temperature,
        top_p=g.top_p,
        batch_size=d.sample_batch_size,
    )
    try:
        pairs = builder.build(prompts)
    finally:
        if own_client:
            client.close()
    too_long = len(questions) - len(prompts)
    if too_long:  # render_prompts dropped them (it logged a warning)
        builder.stats.skipped["prompt_too_long"] = too_long
    builder.stats.prompts = len(questions)
    write_pairs(out, pairs, builder.stats)
    return builder.stats
