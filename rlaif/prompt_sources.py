"""Where questions come from: an offline template generator or an LLM.

Both sources draw one to three topics from the shipped topic list per
question. The template source needs nothing but a seed, so it runs on a
machine without any model; the LLM source asks any OpenAI-compatible chat
endpoint for one question at a time as JSON `{"question": ...}`.

Exceptions: `PromptSourceError` is the base; `TopicsFileError` for a topic
list that is missing or empty, `LLMReplyError` for one reply that holds no
usable question (counted and retried, never fatal on its own).
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import re
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential_jitter,
)

logger = logging.getLogger(__name__)


class PromptSourceError(Exception):
    """Base of the errors of the question sources."""


class TopicsFileError(PromptSourceError):
    """The topic list cannot be used."""


class LLMReplyError(PromptSourceError):
    """An LLM reply holds no question we can use."""


def load_topics(path: Path) -> list[str]:
    """Topics, one per line; blank lines and `#` comments are skipped."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise TopicsFileError(
            f"cannot read topics file {str(path)!r}: {exc}; pass --topics "
            "configs/prompts/topics.txt or a file with one topic per line"
        ) from exc
    topics = [line.strip() for line in lines if line.strip()]
    topics = [topic for topic in topics if not topic.startswith("#")]
    if not topics:
        raise TopicsFileError(f"topics file {str(path)!r} lists no topic")
    return topics


# ---------------------------------------------------------------- templates

MEALS = (
    "breakfast",
    "lunch",
    "dinner",
    "snack",
    "main course",
    "side dish",
    "weeknight dinner",
    "packed lunch",
    "starter",
)
OCCASIONS = (
    "a busy weeknight",
    "a rainy day",
    "a family gathering",
    "a dinner party",
    "a summer evening",
    "a cold winter night",
    "a birthday",
    "a potluck",
    "game night",
    "a lazy Sunday",
)
AUDIENCES = (
    "kids",
    "two people",
    "a crowd",
    "a beginner cook",
    "my roommates",
    "a picky eater",
    "athletes",
    "my parents",
)
VEGETABLES = (
    "spinach",
    "zucchini",
    "carrots",
    "bell peppers",
    "broccoli",
    "potatoes",
    "tomatoes",
    "cauliflower",
    "kale",
    "mushrooms",
    "sweet potatoes",
    "cabbage",
    "green beans",
    "onions",
    "corn",
    "peas",
)
QUESTION_TEMPLATES = (
    "What is a good {meal} idea for {topic}?",
    "Can you suggest a {meal} for {occasion}? I like {topic}.",
    "I'm into {topic}. What should I make for {meal}?",
    "What {meal} would you recommend for {topic} and {topic2}?",
    "Any ideas for a {meal} that fits {topic}?",
    "What is an easy {meal} for {audience}, with a focus on {topic}?",
    "How can I make {meal} more interesting with {topic}?",
    "What dish would you cook for {occasion} if you love {topic}?",
    "Could you recommend a {meal} for {audience}? I enjoy {topic}.",
    "What should I cook tonight? I'm interested in {topic}.",
    "Give me one {meal} idea that combines {topic} and {topic2}.",
    "What is your favourite {meal} for {occasion}, thinking of {topic}?",
    "How do I plan a {meal} around {topic} for {audience}?",
    "What can I make with {vegetable} for {meal}?",
    "I have {vegetable} and {vegetable2}. What {meal} can I make?",
    "What is a filling {meal} for {audience} who like {topic}?",
    "Suggest a dish for {occasion} inspired by {topic}.",
    "What would be a tasty {meal} for {occasion}?",
    "What is a simple recipe for {topic}, {topic2} and {topic3}?",
    "How would you use {vegetable} in a {meal} for {topic}?",
    "What do you cook for {audience} on {occasion}?",
    "Which {meal} goes well with {topic}?",
    "What is a quick {meal} with {vegetable} for {audience}?",
    "I want to try {topic}. Where should I start for {meal}?",
)


def template_question(rng: random.Random, topics: list[str]) -> str:
    """One question from a random template with random slot values."""
    template = rng.choice(QUESTION_TEMPLATES)
    topic, topic2, topic3 = rng.sample(topics, 3) if len(topics) >= 3 else topics * 3
    vegetable, vegetable2 = rng.sample(VEGETABLES, 2)
    return template.format(
        topic=topic,
        topic2=topic2,
        topic3=topic3,
        meal=rng.choice(MEALS),
        occasion=rng.choice(OCCASIONS),
        audience=rng.choice(AUDIENCES),
        vegetable=vegetable,
        vegetable2=vegetable2,
    )


def template_questions(topics: list[str], n: int, seed: int) -> list[str]:
    """`n` template questions (duplicates possible: dedupe afterwards)."""
    rng = random.Random(seed)
    return [template_question(rng, topics) for _ in range(n)]


# ---------------------------------------------------------------------- LLM

LLM_SYSTEM_PROMPT = (
    "You write realistic questions that people ask a cooking assistant. "
    'Reply with JSON only, exactly {"question": "..."}.'
)
LLM_USER_TEMPLATE = (
    "Write one new, specific question about food preferences, recipes or "
    "ingredients that touches these topics: {topics}. "
    'Reply as JSON: {{"question": "..."}}'
)
_FENCE = re.compile(r"```(?:json|JSON)?\s*(.*?)```", re.DOTALL)
_QUESTION_FIELD = re.compile(r'"question"\s*:\s*"((?:[^"\\]|\\.)*)"', re.DOTALL)


def extract_question(reply: str) -> str:
    """The question in an LLM reply: JSON, fenced JSON, or JSON inside prose.

    Tries, in order: the whole reply as JSON; each fenced block; each
    balanced `{...}` object in the text; a bare `"question": "..."` field
    (for JSON that is broken elsewhere). Raises `LLMReplyError` otherwise.
    """
    candidates = [reply, *_FENCE.findall(reply), *_json_objects(reply)]
    for candidate in candidates:
        question = _question_from_json(candidate)
        if question:
            return question
    match = _QUESTION_FIELD.search(reply)
    if match:
        question = _question_from_json('{"question": "' + match.group(1) + '"}')
        if question:
            return question
    raise LLMReplyError(f"no JSON question in reply {reply[:200]!r}")


def _question_from_json(text: str) -> str | None:
    try:
        value = json.loads(text.strip(), strict=False)
    except (json.JSONDecodeError, ValueError):
        return None
    if isinstance(value, list) and value:
        value = value[0]
    if not isinstance(value, dict):
        return None
    question = value.get("question")
    if not isinstance(question, str) or not question.strip():
        return None
    return " ".join(question.split())


def _json_objects(text: str) -> list[str]:
    """Balanced `{...}` substrings, outermost first (quotes respected)."""
    objects, depth, start, in_string, escaped = [], 0, 0, False, False
    for index, char in enumerate(text):
        if in_string:
            escaped = char == "\\" and not escaped
            if char == '"' and not escaped:
                in_string = False
            continue
        if char == '"':
            in_string = True
        elif char == "{":
            if depth == 0:
                start = index
            depth += 1
        elif char == "}" and depth:
            depth -= 1
            if depth == 0:
                objects.append(text[start : index + 1])
    return objects


@dataclass
class LLMStats:
    """What the LLM source did: requests, retries and failures by kind."""

    requests: int = 0
    retries: int = 0
    parse_failures: int = 0
    http_failures: int = 0
    gave_up: int = 0
    questions: int = 0
    failure_examples: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {
            "requests": self.requests,
            "retries": self.retries,
            "parse_failures": self.parse_failures,
            "http_failures": self.http_failures,
            "gave_up": self.gave_up,
            "questions": self.questions,
            "failure_examples": self.failure_examples[:5],
        }


@dataclass(kw_only=True)
class LLMQuestionSource:
    """Questions from an OpenAI-compatible `/v1/chat/completions` endpoint.

    Each request asks for one question; a reply without a usable question or
    a failed request is retried with exponential backoff and jitter up to
    `attempts` times, and counted in `stats` either way.
    """

    base_url: str
    model: str
    topics: list[str]
    seed: int = 0
    api_key: str | None = None
    temperature: float = 1.0
    timeout_s: float = 60.0
    attempts: int = 4
    max_concurrency: int = 4
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 8.0
    stats: LLMStats = field(default_factory=LLMStats)

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError(f"attempts must be >= 1, got {self.attempts!r}")
        self._rng = random.Random(self.seed)

    def _url(self) -> str:
        base = self.base_url.rstrip("/")
        if not base.endswith("/v1"):
            base += "/v1"
        return base + "/chat/completions"

    def _body(self) -> dict:
        chosen = self._rng.sample(self.topics, min(len(self.topics), 3))
        chosen = chosen[: self._rng.randint(1, len(chosen))]
        return {
            "model": self.model,
            "temperature": self.temperature,
            "max_tokens": 128,
            "messages": [
                {"role": "system", "content": LLM_SYSTEM_PROMPT},
                {
                    "role": "user",
                    "content": LLM_USER_TEMPLATE.format(topics=", ".join(chosen)),
                },
            ],
        }

    async def _ask_once(self, client: httpx.AsyncClient, body: dict) -> str:
        self.stats.requests += 1
        try:
            response = await client.post(self._url(), json=body)
            response.raise_for_status()
            reply = response.json()["choices"][0]["message"]["content"]
        except (httpx.HTTPError, KeyError, IndexError, TypeError, ValueError) as exc:
            self.stats.http_failures += 1
            self._remember(f"request: {exc!r}")
            raise LLMReplyError(f"request failed: {exc!r}") from exc
        try:
            return extract_question(reply or "")
        except LLMReplyError as exc:
            self.stats.parse_failures += 1
            self._remember(f"parse: {str(exc)[:160]}")
            raise

    def _remember(self, failure: str) -> None:
        if len(self.stats.failure_examples) < 5:
            self.stats.failure_examples.append(failure)

    async def _ask(self, client: httpx.AsyncClient, gate: asyncio.Semaphore):
        body = self._body()
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.attempts),
            wait=wait_exponential_jitter(
                initial=self.backoff_initial_s, max=self.backoff_max_s
            ),
            retry=retry_if_exception_type(LLMReplyError),
            reraise=True,
        )
        async with gate:
            try:
                async for attempt in retrying:
                    with attempt:
                        if attempt.retry_state.attempt_number > 1:
                            self.stats.retries += 1
                        question = await self._ask_once(client, body)
            except LLMReplyError:
                self.stats.gave_up += 1
                return None
        self.stats.questions += 1
        return question

    async def generate(self, n: int) -> list[str]:
        """Up to `n` questions; fewer when some requests gave up."""
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        gate = asyncio.Semaphore(self.max_concurrency)
        async with httpx.AsyncClient(timeout=self.timeout_s, headers=headers) as client:
            results = await asyncio.gather(*(self._ask(client, gate) for _ in range(n)))
        return [question for question in results if question]
