"""Any OpenAI-compatible endpoint as the judge: vLLM's server, Databricks
Model Serving, TGI.

``endpoint: completions`` sends one request per micro-batch with a list of
prompts rendered in the judge's chat format (Llama-2 by default); in logprob
mode each prompt ends with the reply prefix ``0.`` and asks for one token
with its top logprobs. ``endpoint: chat`` sends one request per text (the
chat API takes one conversation), at most ``concurrency`` at a time; in
logprob mode it reads the top logprobs at the digit after "0." in the
generated reply, and falls back to parsing the reply where there is none.

Transport errors, 429 and 5xx are retried with exponential backoff; when
retries run out the batch fails with BackendUnavailableError (503), never
with made-up scores. Other 4xx answers (a prompt over the model's context)
make that text invalid with the endpoint's message.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import re
from collections.abc import Mapping, Sequence
from typing import Any

import httpx
from tenacity import (
    AsyncRetrying,
    RetryError,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
)

from judge_server.backends.base import JudgeBackend, JudgeRequest
from judge_server.config import OpenAIConfig
from judge_server.errors import BackendUnavailableError
from judge_server.expected_score import DIGITS, REPLY_PREFIX, outcome_from_digit_probs
from judge_server.parsing import parse_score
from judge_server.prompting import judge_messages, llama2_prompt, plain_prompt
from judge_server.rubrics import Rubric
from judge_server.scores import JudgeOutcome

logger = logging.getLogger(__name__)

_PREFIX_DONE = re.compile(r"^\s*0\.$")


class _RetryableStatus(Exception):
    def __init__(self, response: httpx.Response) -> None:
        super().__init__(f"{response.status_code}: {response.text[:200]}")
        self.response = response


def _is_retryable(exc: BaseException) -> bool:
    return isinstance(exc, (httpx.TransportError, _RetryableStatus))


class OpenAIBackend(JudgeBackend):
    def __init__(self, config: OpenAIConfig) -> None:
        self.config = config
        self.model_name = config.model
        self.mode = config.mode
        self._client: httpx.AsyncClient | None = None
        self._slots = asyncio.Semaphore(config.concurrency)

    async def start(self, rubrics: Mapping[str, Rubric]) -> None:
        headers = {}
        key = os.environ.get(self.config.api_key_env)
        if key:
            headers["Authorization"] = f"Bearer {key}"
        else:
            logger.info(
                "%s is not set: calling the endpoint without a key",
                self.config.api_key_env,
            )
        self._client = httpx.AsyncClient(
            base_url=self.config.base_url.rstrip("/"),
            headers=headers,
            timeout=httpx.Timeout(self.config.timeout_s, connect=10.0),
        )

    @property
    def ready(self) -> bool:
        return self._client is not None

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def judge(self, batch: Sequence[JudgeRequest]) -> list[JudgeOutcome]:
        if not batch:
            return []
        if self.config.endpoint == "completions":
            return await self._judge_completions(batch)
        return list(await asyncio.gather(*(self._judge_chat(r) for r in batch)))

    # -- HTTP ----------------------------------------------------------------

    async def _post(self, path: str, body: dict[str, Any]) -> httpx.Response:
        """POST with retries; a non-retryable 4xx is returned to the caller."""
        assert self._client is not None, "start() the backend first"
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.config.max_retries + 1),
            wait=wait_exponential(multiplier=self.config.backoff_s, max=30),
            retry=retry_if_exception(_is_retryable),
            reraise=False,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    async with self._slots:
                        response = await self._client.post(path, json=body)
                    if response.status_code == 429 or response.status_code >= 500:
                        raise _RetryableStatus(response)
                    return response
        except RetryError as exc:
            last = exc.last_attempt.exception()
            raise BackendUnavailableError(
                f"judge endpoint {self.config.base_url}{path} failed "
                f"{self.config.max_retries + 1} times: {last}"
            ) from last
        raise AssertionError("unreachable")

    # -- /v1/completions -----------------------------------------------------

    def _completion_prompt(self, request: JudgeRequest) -> str:
        messages = judge_messages(request.rubric, request.text, request.prompt)
        render = (
            llama2_prompt if self.config.prompt_format == "llama-2" else plain_prompt
        )
        prompt = render(messages)
        if self.mode == "logprob":
            prompt += " " + REPLY_PREFIX
        return prompt

    async def _judge_completions(
        self, batch: Sequence[JudgeRequest]
    ) -> list[JudgeOutcome]:
        body: dict[str, Any] = {
            "model": self.config.model,
            "prompt": [self._completion_prompt(r) for r in batch],
            "temperature": 0.0,
            "max_tokens": 1 if self.mode == "logprob" else self.config.max_new_tokens,
        }
        if self.mode == "logprob":
            body["logprobs"] = self.config.top_logprobs
        response = await self._post("/completions", body)
        if response.status_code != 200:
            return [_endpoint_refused(response) for _ in batch]
        choices = sorted(response.json()["choices"], key=lambda c: c.get("index", 0))
        if len(choices) != len(batch):
            raise BackendUnavailableError(
                f"endpoint returned {len(choices)} choices for {len(batch)} prompts"
            )
        return [self._completion_outcome(choice) for choice in choices]

    def _completion_outcome(self, choice: dict[str, Any]) -> JudgeOutcome:
        text = choice.get("text") or ""
        if self.mode == "text":
            return parse_score(text, tokens=_count_tokens(choice))
        top = ((choice.get("logprobs") or {}).get("top_logprobs") or [None])[0]
        if not top:
            return JudgeOutcome.invalid(
                text, "the endpoint returned no logprobs", "no_logprobs", 1
            )
        return outcome_from_digit_probs(_digit_probs(top), self.config.min_score_mass)

    # -- /v1/chat/completions ------------------------------------------------

    async def _judge_chat(self, request: JudgeRequest) -> JudgeOutcome:
        body: dict[str, Any] = {
            "model": self.config.model,
            "messages": judge_messages(request.rubric, request.text, request.prompt),
            "temperature": 0.0,
            "max_tokens": self.config.max_new_tokens,
        }
        if self.mode == "logprob":
            body["logprobs"] = True
            body["top_logprobs"] = self.config.top_logprobs
        response = await self._post("/chat/completions", body)
        if response.status_code != 200:
            return _endpoint_refused(response)
        choice = response.json()["choices"][0]
        reply = (choice.get("message") or {}).get("content") or ""
        tokens = (choice.get("logprobs") or {}).get("content") or []
        if self.mode == "logprob":
            top = _top_logprobs_after_prefix(tokens)
            if top is not None:
                return outcome_from_digit_probs(
                    _digit_probs(top), self.config.min_score_mass
                )
        return parse_score(reply, tokens=len(tokens))


def _digit_probs(top: Mapping[str, float]) -> dict[int, float]:
    """{digit: probability} from {token string: logprob}; absent digits 0."""
    probs = {d: 0.0 for d in range(10)}
    for token, logprob in top.items():
        stripped = token.strip()
        if stripped in DIGITS and logprob is not None:
            probs[int(stripped)] += math.exp(logprob)
    return probs


def _top_logprobs_after_prefix(tokens: list[dict[str, Any]]) -> dict[str, float] | None:
    """Top logprobs of the token right after the generated "0.", if any."""
    written = ""
    for token in tokens:
        if _PREFIX_DONE.match(written) and token.get("token", "").strip() in DIGITS:
            return {t["token"]: t["logprob"] for t in token.get("top_logprobs", [])}
        written += token.get("token", "")
    return None


def _count_tokens(choice: dict[str, Any]) -> int:
    logprobs = choice.get("logprobs") or {}
    return len(logprobs.get("tokens") or [])


def _endpoint_refused(response: httpx.Response) -> JudgeOutcome:
    try:
        message = response.json()["error"]["message"]
    except (ValueError, KeyError, TypeError):
        message = response.text[:200]
    return JudgeOutcome.invalid(
        "",
        f"judge endpoint answered {response.status_code}: {message}",
        "endpoint_error",
    )
