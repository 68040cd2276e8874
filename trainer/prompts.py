"""Training prompts: questions read from a file, rendered as chat prompts.

Files: `.txt` with one question per line (what `rlaif prompts generate`
writes) or `.jsonl` rows `{"question": ...}`. Each question is rendered with
the policy tokenizer's chat template, the use case's system prompt and the
assistant turn opened, exactly as the chat service will prompt the model.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

from trainer.errors import PromptsError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RenderedPrompt:
    question: str
    text: str
    input_ids: tuple[int, ...]


def load_questions(path: str | Path, limit: int | None = None) -> list[str]:
    """Questions from a .txt or .jsonl file, blank lines skipped."""
    path = Path(path)
    if not path.is_file():
        raise PromptsError(
            f"prompts file {str(path)!r} does not exist: set prompts.train"
        )
    lines = [line.strip() for line in path.read_text().splitlines()]
    lines = [line for line in lines if line]
    if path.suffix == ".jsonl":
        questions = [_question(path, n, line) for n, line in enumerate(lines, 1)]
    else:
        questions = lines
    if limit is not None:
        questions = questions[:limit]
    if not questions:
        raise PromptsError(f"prompts file {str(path)!r} holds no questions")
    return questions


def _question(path: Path, number: int, line: str) -> str:
    try:
        row = json.loads(line)
        question = row["question"]
    except (ValueError, KeyError, TypeError) as exc:
        raise PromptsError(
            f'{path}:{number}: expected a JSON object with a "question" string'
        ) from exc
    if not isinstance(question, str) or not question.strip():
        raise PromptsError(f"{path}:{number}: question must be a non-empty string")
    return question.strip()


def chat_messages(question: str, system_prompt: str) -> list[dict[str, str]]:
    messages = [{"role": "user", "content": question}]
    if system_prompt:
        messages.insert(0, {"role": "system", "content": system_prompt})
    return messages


def render_prompts(
    tokenizer, questions: list[str], system_prompt: str, max_tokens: int
) -> list[RenderedPrompt]:
    """Chat-template each question; skip (with a warning) the too-long ones."""
    rendered, skipped = [], 0
    for question in questions:
        text = tokenizer.apply_chat_template(
            chat_messages(question, system_prompt),
            tokenize=False,
            add_generation_prompt=True,
        )
        # The template already holds BOS; the tokenizer must not add another.
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        if len(ids) > max_tokens:
            skipped += 1
            continue
        rendered.append(RenderedPrompt(question, text, tuple(ids)))
    if skipped:
        logger.warning(
            "skipped %d prompts longer than prompts.max_prompt_tokens=%d",
            skipped,
            max_tokens,
        )
    if not rendered:
        raise PromptsError(
            f"every prompt is longer than prompts.max_prompt_tokens={max_tokens}"
        )
    return rendered
