"""`rlaif eval`: base and tuned policy answer the same questions, judged twice.

Every question is answered by the base model and by base + adapter with the
same decoding: sampling (temperature, top-p) with a seed of its own per
question, derived from `--seed` and the question text. Sampling is what the
policy does during PPO and in the chat service, so it is the honest measure
of a sampled policy (greedy decoding would hide how often the policy still
picks meat); the per-question seed makes the result independent of batch
size and question order, and makes base and tuned draw from the same random
stream. Each answer is scored by the judge over HTTP (non-vegetarian when
the score is below 0.5) and checked by `rlaif.lexicon`, which shares nothing
with the judge.

Output: `{"base": M, "tuned": M, "answers": [...], "settings": {...}}` with
`M = {"n", "non_veg_rate_judge", "non_veg_rate_lexicon", "mean_score", ...}`.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path

from rlaif.usecase import SYSTEM_PROMPT, chat_messages

logger = logging.getLogger(__name__)


class EvaluationError(Exception):
    """The evaluation cannot run as asked (bad input files or judge)."""


@dataclass(frozen=True, kw_only=True)
class EvalSettings:
    seed: int = 0
    max_new_tokens: int = 48
    temperature: float = 1.0
    top_p: float = 1.0
    batch_size: int = 50
    system_prompt: str = SYSTEM_PROMPT
    rubric: str = "vegetarian"

    def __post_init__(self) -> None:
        if self.temperature <= 0:
            raise ValueError(
                f"temperature must be > 0, got {self.temperature!r}: the "
                "evaluation samples; use a small value such as 0.1 for near-greedy"
            )
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p!r}")


@dataclass(frozen=True, kw_only=True)
class Answer:
    text: str
    tokens: int
    stopped: bool


def question_seed(seed: int, question: str) -> int:
    """The sampling seed of one question: stable across runs and batchings."""
    return (seed * 1_000_003 + zlib.crc32(question.encode("utf-8"))) % (2**31)


def seeded_sampler(seeds: list[int], temperature: float, top_p: float):
    """A logits processor that samples each row from its own generator.

    `generate` is run greedily with this processor: the processor draws the
    next token of each row (temperature, then nucleus filtering) from that
    row's own `torch.Generator` and leaves only that token finite, so the
    greedy pick is the sampled token. One shared RNG, as `do_sample=True`
    uses, would make a row's sample depend on the other rows of its batch.
    """
    import torch
    from transformers import LogitsProcessor

    generators = [torch.Generator().manual_seed(seed) for seed in seeds]

    class _SeededSampler(LogitsProcessor):
        def __call__(self, input_ids, scores):
            probs = torch.softmax(scores.float() / temperature, dim=-1)
            if top_p < 1.0:
                sorted_probs, order = probs.sort(dim=-1, descending=True)
                outside = sorted_probs.cumsum(dim=-1) - sorted_probs > top_p
                sorted_probs[outside] = 0.0
                probs = torch.zeros_like(probs).scatter(-1, order, sorted_probs)
            chosen = torch.stack(
                [
                    torch.multinomial(row, 1, generator=generator)[0]
                    for row, generator in zip(probs, generators, strict=True)
                ]
            )
            masked = torch.full_like(scores, float("-inf"))
            return masked.scatter(-1, chosen[:, None], 0.0)

    return _SeededSampler()


def generate_answers(
    model, tokenizer, questions: list[str], settings: EvalSettings, desc: str = ""
) -> list[Answer]:
    """One sampled answer per question, seeded per question."""
    import torch
    from tqdm import tqdm
    from transformers import LogitsProcessorList

    tokenizer.padding_side = "left"
    answers: list[Answer] = []
    starts = range(0, len(questions), settings.batch_size)
    for start in tqdm(starts, desc=desc or "generate", leave=False):
        batch = questions[start : start + settings.batch_size]
        prompts = [
            tokenizer.apply_chat_template(
                chat_messages(question, settings.system_prompt),
                tokenize=False,
                add_generation_prompt=True,
            )
            for question in batch
        ]
        encoded = tokenizer(
            prompts, add_special_tokens=False, padding=True, return_tensors="pt"
        )
        sampler = seeded_sampler(
            [question_seed(settings.seed, q) for q in batch],
            settings.temperature,
            settings.top_p,
        )
        with torch.no_grad():
            output = model.generate(
                **encoded,
                do_sample=False,
                logits_processor=LogitsProcessorList([sampler]),
                max_new_tokens=settings.max_new_tokens,
                eos_token_id=tokenizer.eos_token_id,
                pad_token_id=tokenizer.pad_token_id,
            )
        answers.extend(_decode(tokenizer, output[:, encoded["input_ids"].shape[1] :]))
    return answers


def _decode(tokenizer, responses) -> list[Answer]:
    answers = []
    for row in responses.tolist():
        stopped = tokenizer.eos_token_id in row
        if stopped:
            row = row[: row.index(tokenizer.eos_token_id)]
        row = [token for token in row if token != tokenizer.pad_token_id]
        text = tokenizer.decode(row, skip_special_tokens=True).strip()
        answers.append(Answer(text=text, tokens=len(row), stopped=stopped))
    return answers


def summarise(judged: list[dict]) -> dict:
    """The metrics `M` of one model from its judged answers."""
    n = len(judged)
    valid = [row for row in judged if row["valid"]]
    judge_non_veg = [row for row in valid if row["score"] < 0.5]
    lexicon_non_veg = [row for row in judged if row["lexicon_terms"]]
    agree = [row for row in valid if (row["score"] < 0.5) == bool(row["lexicon_terms"])]
    scores = [row["score"] for row in valid]
    return {
        "n": n,
        "non_veg_rate_judge": len(judge_non_veg) / len(valid) if valid else None,
        "non_veg_rate_lexicon": len(lexicon_non_veg) / n if n else None,
        "mean_score": sum(scores) / len(scores) if scores else None,
        "non_veg_judge": len(judge_non_veg),
        "non_veg_lexicon": len(lexicon_non_veg),
        "judge_invalid": n - len(valid),
        "judge_lexicon_agreement": len(agree) / len(valid) if valid else None,
        "stopped_rate": sum(row["stopped"] for row in judged) / n if n else None,
        "mean_tokens": sum(row["tokens"] for row in judged) / n if n else None,
    }


def judge_answers(judge, answers: list[Answer]) -> list[dict]:
    """Judge and lexicon verdicts for each answer, as JSON-ready rows."""
    from rlaif.lexicon import animal_products

    results = judge.score_sync([answer.text for answer in answers])
    rows = []
    for answer, result in zip(answers, results, strict=True):
        rows.append(
            {
                "text": answer.text,
                "score": result.score,
                "valid": result.valid,
                "judge_error": result.error,
                "lexicon_terms": animal_products(answer.text),
                "stopped": answer.stopped,
                "tokens": answer.tokens,
            }
        )
    return rows


def load_policy(base_dir: Path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(base_dir)
    model = AutoModelForCausalLM.from_pretrained(base_dir)
    model.eval()
    return model, tokenizer


def evaluate(
    base_dir: Path,
    adapter_dir: Path,
    questions: list[str],
    judge,
    settings: EvalSettings,
) -> dict:
    """Answer, judge and check every question with base and tuned model."""
    from peft import PeftModel

    if not questions:
        raise EvaluationError("the question file holds no question")
    model, tokenizer = load_policy(base_dir)
    base = generate_answers(model, tokenizer, questions, settings, "eval base")
    tuned_model = PeftModel.from_pretrained(model, str(adapter_dir))
    tuned_model.eval()
    tuned = generate_answers(tuned_model, tokenizer, questions, settings, "eval tuned")

    base_rows, tuned_rows = judge_answers(judge, base), judge_answers(judge, tuned)
    answers = [
        {"question": question, "base": base_row, "tuned": tuned_row}
        for question, base_row, tuned_row in zip(
            questions, base_rows, tuned_rows, strict=True
        )
    ]
    return {
        "base": summarise(base_rows),
        "tuned": summarise(tuned_rows),
        "answers": answers,
        "settings": {
            **asdict(settings),
            "decoding": "sampling, seeded per question (same seeds for both)",
            "base": str(base_dir),
            "adapter": str(adapter_dir),
            "n_questions": len(questions),
        },
    }


def read_question_file(path: Path) -> list[str]:
    """Questions, one per line (`.jsonl` rows with a `question` field too)."""
    from rlaif.prompts import read_questions

    try:
        return read_questions(path)
    except (OSError, ValueError) as exc:
        raise EvaluationError(
            f"cannot read questions from {str(path)!r}: {exc}"
        ) from exc


def _handle(args: argparse.Namespace) -> int:
    from trainer.judge_client import JudgeClient

    settings = EvalSettings(
        seed=args.seed,
        max_new_tokens=args.max_new_tokens,
        temperature=args.temperature,
        top_p=args.top_p,
        batch_size=args.batch_size,
        rubric=args.rubric,
    )
    from trainer.errors import JudgeProtocolError, JudgeUnavailableError

    judge = JudgeClient([args.judge_url], args.rubric, max_downtime_s=60.0)
    try:
        questions = read_question_file(args.questions)
        report = evaluate(args.base, args.adapter, questions, judge, settings)
    except EvaluationError as exc:
        sys.stderr.write(f"rlaif eval: {exc}\n")
        return 2
    except (JudgeUnavailableError, JudgeProtocolError) as exc:
        sys.stderr.write(f"rlaif eval: judge at {args.judge_url} failed: {exc}\n")
        return 3
    finally:
        judge.close()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    sys.stdout.write(format_headline(report) + f"\n-> {args.out}\n")
    return 0


def format_headline(report: dict) -> str:
    """The before/after table a person reads first."""

    def rate(value):
        return "n/a" if value is None else f"{value:.0%}"

    def score(value):
        return "n/a" if value is None else f"{value:.3f}"

    base, tuned = report["base"], report["tuned"]
    lines = [
        f"{'':28}{'base':>10}{'tuned':>10}",
        f"{'non-veg rate (judge)':28}{rate(base['non_veg_rate_judge']):>10}"
        f"{rate(tuned['non_veg_rate_judge']):>10}",
        f"{'non-veg rate (lexicon)':28}{rate(base['non_veg_rate_lexicon']):>10}"
        f"{rate(tuned['non_veg_rate_lexicon']):>10}",
        f"{'mean judge score':28}{score(base['mean_score']):>10}"
        f"{score(tuned['mean_score']):>10}",
        f"{'answers that stop (EOS)':28}{rate(base['stopped_rate']):>10}"
        f"{rate(tuned['stopped_rate']):>10}",
        f"{'questions':28}{base['n']:>10}{tuned['n']:>10}",
    ]
    return "\n".join(lines)


def register(subparsers) -> None:
    """Add `rlaif eval` to the `rlaif` parser."""
    parser = subparsers.add_parser(
        "eval", help="Base vs tuned on a question file: judge and lexicon."
    )
    parser.add_argument("--base", type=Path, required=True, help="Base model dir.")
    parser.add_argument("--adapter", type=Path, required=True, help="LoRA dir.")
    parser.add_argument(
        "--questions", type=Path, required=True, help="One question per line."
    )
    parser.add_argument("--judge-url", required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--rubric", default="vegetarian")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--top-p", type=float, default=1.0)
    parser.add_argument("--batch-size", type=int, default=50)
    parser.set_defaults(handler=_handle)
