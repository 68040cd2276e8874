"""`rlaif prompts generate`: training and hold-out questions, leak-free.

Questions come from a source (`template` offline, or `llm` over an
OpenAI-compatible endpoint, see `rlaif.prompt_sources`), are deduplicated by
normalised text and by near-duplicate similarity (`rlaif.dedupe`), then split
into `train.txt` and `holdout.txt`, one question per line. Since no two kept
questions are near-duplicates of each other, no question can sit on both
sides of the split; the split is still checked before anything is written.
`--exclude` names further questions (the bootstrap corpus, say) that must not
appear in the hold-out set either.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import random
import sys
from dataclasses import dataclass
from pathlib import Path

from rlaif.dedupe import NearDuplicateIndex, leaked_pairs

logger = logging.getLogger(__name__)


class PromptSetError(Exception):
    """The prompt sets cannot be produced as asked."""


@dataclass(frozen=True, kw_only=True)
class PromptSets:
    train: list[str]
    holdout: list[str]
    stats: dict


def read_questions(path: Path) -> list[str]:
    """Questions from a `.txt` (one per line) or `.jsonl` (`question` field)."""
    path = Path(path)
    lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    lines = [line for line in lines if line]
    if path.suffix != ".jsonl":
        return lines
    questions = []
    for number, line in enumerate(lines, 1):
        row = json.loads(line)
        if not isinstance(row, dict) or not isinstance(row.get("question"), str):
            raise PromptSetError(
                f"{path}:{number}: expected a JSON object with a string "
                f"'question' field, got {line[:80]!r}"
            )
        questions.append(row["question"])
    return questions


def split_questions(
    candidates: list[str],
    *,
    n_train: int,
    n_holdout: int,
    seed: int,
    exclude: list[str] = (),
    threshold: float = 0.7,
) -> PromptSets:
    """Deduplicate `candidates` and split them into train and hold-out."""
    index = NearDuplicateIndex(threshold=threshold)
    unique = [question for question in candidates if index.add(question)]
    random.Random(seed).shuffle(unique)

    # Hold-out questions must not resemble anything in `exclude`.
    excluded = NearDuplicateIndex(threshold=threshold)
    for question in exclude:
        excluded.add(question, keep_duplicates=True)
    holdout, train = [], []
    for question in unique:
        if len(holdout) < n_holdout and excluded.find(question) is None:
            holdout.append(question)
        elif len(train) < n_train:
            train.append(question)
    if len(holdout) < n_holdout or len(train) < n_train:
        raise PromptSetError(
            f"only {len(unique)} unique questions for {n_train} train + "
            f"{n_holdout} hold-out ({len(holdout)} usable for hold-out); "
            "lower --n-train/--n-holdout or generate more candidates"
        )
    leaks = leaked_pairs(train, holdout, threshold) + leaked_pairs(
        exclude, holdout, threshold
    )
    if leaks:
        raise PromptSetError(f"hold-out leaks into training: {leaks[:3]!r}")
    stats = {
        "candidates": len(candidates),
        "unique": len(unique),
        "duplicates_removed": len(candidates) - len(unique),
        "train": len(train),
        "holdout": len(holdout),
        "excluded_reference": len(exclude),
        "near_duplicate_threshold": threshold,
        "seed": seed,
    }
    return PromptSets(train=train, holdout=holdout, stats=stats)


def template_candidates(topics: list[str], needed: int, seed: int) -> list[str]:
    """Enough template questions that `needed` survive deduplication."""
    from rlaif.prompt_sources import template_questions

    index = NearDuplicateIndex()
    candidates: list[str] = []
    for round_number in range(20):
        batch = template_questions(topics, needed, seed * 1000 + round_number)
        candidates.extend(batch)
        unique = sum(index.add(question) for question in batch)
        if len(index) >= needed:
            return candidates
        logger.info("template round %s: %s unique so far", round_number, unique)
    return candidates


def llm_candidates(args: argparse.Namespace, topics: list[str], needed: int):
    """Questions from the LLM, asked in rounds until `needed` are unique."""
    from rlaif.prompt_sources import LLMQuestionSource

    source = LLMQuestionSource(
        base_url=args.llm_url,
        model=args.llm_model,
        topics=topics,
        seed=args.seed,
        api_key=os.environ.get(args.llm_api_key_env) or None,
        max_concurrency=args.llm_concurrency,
        attempts=args.llm_attempts,
    )
    index = NearDuplicateIndex()
    candidates: list[str] = []
    budget = needed * args.llm_budget_factor
    while len(index) < needed and source.stats.requests < budget:
        asked = min(int((needed - len(index)) * 1.2) + 1, budget - len(candidates))
        if asked <= 0:
            break
        batch = asyncio.run(source.generate(asked))
        if not batch:
            break
        candidates.extend(batch)
        for question in batch:
            index.add(question)
    return candidates, source.stats.as_dict()


def write_sets(out_dir: Path, sets: PromptSets) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, questions in (("train.txt", sets.train), ("holdout.txt", sets.holdout)):
        text = "".join(" ".join(question.split()) + "\n" for question in questions)
        (out_dir / name).write_text(text, encoding="utf-8")
    (out_dir / "stats.json").write_text(json.dumps(sets.stats, indent=2) + "\n")


def generate(args: argparse.Namespace) -> int:
    from rlaif.prompt_sources import load_topics

    if args.n_train < 1 or args.n_holdout < 0:
        raise PromptSetError(
            f"--n-train {args.n_train} --n-holdout {args.n_holdout}: ask for at "
            "least one training question and zero or more hold-out questions"
        )
    topics = load_topics(args.topics)
    needed = args.n_train + args.n_holdout
    exclude = [q for path in args.exclude or () for q in read_questions(path)]
    if args.source == "llm":
        if not args.llm_url or not args.llm_model:
            raise PromptSetError("--source llm needs --llm-url and --llm-model")
        candidates, source_stats = llm_candidates(args, topics, needed)
    else:
        candidates, source_stats = template_candidates(topics, needed, args.seed), {}
    sets = split_questions(
        candidates,
        n_train=args.n_train,
        n_holdout=args.n_holdout,
        seed=args.seed,
        exclude=exclude,
        threshold=args.near_duplicate_threshold,
    )
    sets.stats.update(source=args.source, source_stats=source_stats)
    write_sets(Path(args.out_dir), sets)
    sys.stdout.write(
        f"prompts: {len(sets.train)} train, {len(sets.holdout)} hold-out "
        f"({sets.stats['duplicates_removed']} duplicates removed) -> {args.out_dir}\n"
    )
    return 0


def _handle(args: argparse.Namespace) -> int:
    from rlaif.prompt_sources import PromptSourceError

    try:
        return generate(args)
    except (PromptSetError, PromptSourceError) as exc:
        sys.stderr.write(f"rlaif prompts generate: {exc}\n")
        return 2


def register(subparsers) -> None:
    """Add `rlaif prompts generate` to the `rlaif` parser."""
    prompts = subparsers.add_parser("prompts", help="Generate question sets.")
    commands = prompts.add_subparsers(dest="prompts_command", required=True)
    parser = commands.add_parser(
        "generate", help="Write train.txt and holdout.txt without leakage."
    )
    parser.add_argument("--source", choices=("template", "llm"), default="template")
    parser.add_argument(
        "--topics", type=Path, default=Path("configs/prompts/topics.txt")
    )
    parser.add_argument(
        "--n-train", type=int, default=1000, help="Training questions (default 1000)."
    )
    parser.add_argument(
        "--n-holdout", type=int, default=100, help="Hold-out questions (default 100)."
    )
    parser.add_argument("--out-dir", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--exclude",
        type=Path,
        action="append",
        help="Questions (.txt or .jsonl) that must not appear in the hold-out set; "
        "repeatable. The demo passes the bootstrap corpus.",
    )
    parser.add_argument(
        "--near-duplicate-threshold",
        type=float,
        default=0.7,
        help="Jaccard similarity of word 3-shingles that counts as a duplicate.",
    )
    llm = parser.add_argument_group("LLM source")
    llm.add_argument("--llm-url", help="OpenAI-compatible base URL, e.g. http://h:8000")
    llm.add_argument("--llm-model", help="Model name the endpoint serves.")
    llm.add_argument("--llm-api-key-env", default="OPENAI_API_KEY")
    llm.add_argument("--llm-concurrency", type=int, default=4)
    llm.add_argument("--llm-attempts", type=int, default=4)
    llm.add_argument(
        "--llm-budget-factor",
        type=int,
        default=3,
        help="Stop after this many requests per question needed.",
    )
    parser.set_defaults(handler=_handle)
