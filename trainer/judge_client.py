"""Client of the judge server's `POST /v1/score` API.

Used by training (PPO, GRPO, RLOO), evaluation and DPO pair labelling, so it
depends only on the HTTP contract in DESIGN.md, never on the server's code.

What it guarantees:

- results come back in request order, one per text, however the batch was
  chunked (`max_batch` texts per request, `max_concurrency` requests in
  flight, URLs taken round-robin so several judges share the load);
- transient failures (connection errors, timeouts, 5xx, 429, a malformed
  body) are retried with exponential backoff and jitter, honouring a
  503/429 `Retry-After`; when a chunk has failed for longer than
  `max_downtime_s` the client raises `JudgeUnavailableError`. It never
  invents a score to keep going;
- a 4xx other than 429 means our request is wrong: `JudgeProtocolError` at
  once, no retry;
- a result is `valid` only when the judge said so *and* its score lies in
  (0, 1) with a finite reward; invalid results are re-scored once
  (`retry_invalid`), what stays invalid is returned as such for the caller's
  policy to handle.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
import threading
import time
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_delay,
    wait_exponential_jitter,
)

from trainer.errors import JudgeProtocolError, JudgeUnavailableError

logger = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class JudgeResult:
    """One judged text. `score` and `reward` are None when `valid` is False."""

    score: float | None
    reward: float | None
    valid: bool
    raw: str | None = None
    error: str | None = None

    @classmethod
    def from_payload(cls, item: Any) -> JudgeResult:
        """Parse one result, downgrading impossible values to invalid."""
        if not isinstance(item, dict):
            return cls(None, None, False, error=f"result is not an object: {item!r}")
        raw, error = item.get("raw"), item.get("error")
        score, reward = item.get("score"), item.get("reward")
        if not item.get("valid"):
            return cls(None, None, False, raw=raw, error=error or "judge: invalid")
        if not _is_probability(score) or not _is_finite(reward):
            return cls(
                None,
                None,
                False,
                raw=raw,
                error=f"judge sent valid=true with score={score!r} reward={reward!r}",
            )
        return cls(float(score), float(reward), True, raw=raw, error=None)


def _is_finite(value: Any) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)


def _is_probability(value: Any) -> bool:
    return _is_finite(value) and 0.0 < float(value) < 1.0


class _RetryableJudgeError(Exception):
    """A failure worth retrying; `retry_after` is the server's hint in seconds."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


BLANK_RESULT = JudgeResult(
    score=None, reward=None, valid=False, raw="", error="empty response"
)


@dataclass
class JudgeClientStats:
    """Counters since the client was made (read by trainer metrics)."""

    requests: int = 0
    failures: int = 0
    texts: int = 0
    invalid_retried: int = 0
    latencies_s: list[float] = field(default_factory=list)


class JudgeClient:
    """Scores texts with one or more judge servers over HTTP.

    Use as an async context manager (or call `aclose`) so the connection
    pool is closed; `score_sync` runs the client on a private background
    event loop for synchronous callers such as TRL's PPO forward pass.
    """

    def __init__(
        self,
        urls: Sequence[str],
        rubric: str,
        *,
        timeout_s: float = 30.0,
        max_concurrency: int = 4,
        max_batch: int = 32,
        max_downtime_s: float = 60.0,
        retry_initial_s: float = 0.5,
        retry_max_s: float = 8.0,
        retry_invalid: bool = True,
        api_key: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if not urls:
            raise ValueError("JudgeClient needs at least one judge URL (--judge-url)")
        self.urls = [url.rstrip("/") for url in urls]
        self.rubric = rubric
        self.timeout_s = timeout_s
        self.max_batch = max_batch
        self.max_downtime_s = max_downtime_s
        self.retry_initial_s = retry_initial_s
        self.retry_max_s = retry_max_s
        self.retry_invalid = retry_invalid
        self.stats = JudgeClientStats()
        # The judge model's name from the latest reply (DPO pairs record it).
        self.judge_name: str | None = None
        self._max_concurrency = max_concurrency
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._transport = transport
        self._url_cycle = itertools.cycle(self.urls)
        self._http: httpx.AsyncClient | None = None
        self._semaphore: asyncio.Semaphore | None = None
        self._loop_thread: BackgroundLoop | None = None

    # -- public API ---------------------------------------------------------

    async def score(
        self, texts: Sequence[str], prompts: Sequence[str] | None = None
    ) -> list[JudgeResult]:
        """Judge `texts` (with their `prompts` if given), in order."""
        if prompts is not None and len(prompts) != len(texts):
            raise ValueError(
                f"score() got {len(texts)} texts but {len(prompts)} prompts: "
                "pass one prompt per text or none"
            )
        # The judge refuses blank texts (400); a policy that answers nothing
        # gets an invalid result here instead, which the caller's invalid
        # policy handles, rather than failing the whole batch.
        keep = [i for i, text in enumerate(texts) if text.strip()]
        results = [BLANK_RESULT] * len(texts)
        if keep:
            sent = [texts[i] for i in keep]
            sent_prompts = None if prompts is None else [prompts[i] for i in keep]
            judged = await self._score_all(sent, sent_prompts)
            if self.retry_invalid:
                judged = await self._rescore_invalid(sent, sent_prompts, judged)
            for index, result in zip(keep, judged, strict=True):
                results[index] = result
        return results

    def score_sync(
        self, texts: Sequence[str], prompts: Sequence[str] | None = None
    ) -> list[JudgeResult]:
        """`score` for synchronous code, on a background event loop thread."""
        return self.run_sync(self.score(texts, prompts))

    def run_sync(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run a coroutine that uses this client from synchronous code.

        The client's pool lives on one private loop thread for its lifetime,
        so a synchronous forward pass can call it without owning a loop.
        """
        if self._loop_thread is None:
            self._loop_thread = BackgroundLoop()
        return self._loop_thread.run(coro)

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    def close(self) -> None:
        """Close the pool and stop the background loop, if either exists."""
        if self._loop_thread is not None:
            self._loop_thread.run(self.aclose())
            self._loop_thread.stop()
            self._loop_thread = None
        elif self._http is not None:
            # Made on a caller's loop (e.g. TRL's reward loop) that may be
            # gone; closing on a fresh loop is best effort.
            try:
                asyncio.run(self.aclose())
            except RuntimeError as exc:
                logger.debug("judge client pool not closed cleanly: %s", exc)
                self._http = None

    async def __aenter__(self) -> JudgeClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # -- internals ----------------------------------------------------------

    def _client(self) -> httpx.AsyncClient:
        # Made lazily so the pool and semaphore belong to the running loop.
        if self._http is None:
            limits = httpx.Limits(
                max_connections=self._max_concurrency,
                max_keepalive_connections=self._max_concurrency,
            )
            self._http = httpx.AsyncClient(
                timeout=self.timeout_s,
                limits=limits,
                headers=self._headers,
                transport=self._transport,
            )
            self._semaphore = asyncio.Semaphore(self._max_concurrency)
        return self._http

    async def _score_all(
        self, texts: list[str], prompts: Sequence[str] | None
    ) -> list[JudgeResult]:
        if not texts:
            return []
        self._client()
        chunks = [
            (start, min(start + self.max_batch, len(texts)))
            for start in range(0, len(texts), self.max_batch)
        ]
        parts = await asyncio.gather(
            *(self._score_chunk(texts, prompts, lo, hi) for lo, hi in chunks)
        )
        return [result for part in parts for result in part]

    async def _rescore_invalid(
        self,
        texts: list[str],
        prompts: Sequence[str] | None,
        results: list[JudgeResult],
    ) -> list[JudgeResult]:
        redo = [i for i, result in enumerate(results) if not result.valid]
        if not redo:
            return results
        self.stats.invalid_retried += len(redo)
        again = await self._score_all(
            [texts[i] for i in redo],
            None if prompts is None else [prompts[i] for i in redo],
        )
        merged = list(results)
        for index, result in zip(redo, again, strict=True):
            merged[index] = result
        return merged

    async def _score_chunk(
        self, texts: list[str], prompts: Sequence[str] | None, lo: int, hi: int
    ) -> list[JudgeResult]:
        if prompts is None:
            payload: dict[str, Any] = {"rubric": self.rubric, "texts": texts[lo:hi]}
        else:
            payload = {
                "rubric": self.rubric,
                "items": [
                    {"prompt": prompts[i], "response": texts[i]} for i in range(lo, hi)
                ],
            }
        retrying = AsyncRetrying(
            retry=retry_if_exception_type(_RetryableJudgeError),
            stop=stop_after_delay(self.max_downtime_s),
            wait=self._wait,
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    return await self._post(payload, hi - lo)
        except _RetryableJudgeError as exc:
            raise JudgeUnavailableError(
                f"no judge answered for {self.max_downtime_s:.0f}s "
                f"(judge.max_downtime_s) at {self.urls}: last error: {exc}. "
                "Start the judge or raise judge.max_downtime_s."
            ) from exc
        raise AssertionError("unreachable: tenacity either returns or raises")

    def _wait(self, state: RetryCallState) -> float:
        backoff = wait_exponential_jitter(
            initial=self.retry_initial_s, max=self.retry_max_s
        )(state)
        exc = state.outcome.exception() if state.outcome else None
        hint = getattr(exc, "retry_after", None)
        return max(backoff, hint) if hint is not None else backoff

    async def _post(self, payload: dict[str, Any], expected: int) -> list[JudgeResult]:
        url = next(self._url_cycle)
        assert self._semaphore is not None
        async with self._semaphore:
            started = time.perf_counter()
            self.stats.requests += 1
            try:
                response = await self._client().post(f"{url}/v1/score", json=payload)
            except httpx.HTTPError as exc:
                self.stats.failures += 1
                logger.warning("judge %s unreachable: %s", url, exc)
                raise _RetryableJudgeError(f"{url}: {exc!r}") from exc
            self.stats.latencies_s.append(time.perf_counter() - started)
        return self._parse(url, response, expected)

    def _parse(
        self, url: str, response: httpx.Response, expected: int
    ) -> list[JudgeResult]:
        status = response.status_code
        if status == 429 or status >= 500:
            self.stats.failures += 1
            logger.warning("judge %s answered %s", url, status)
            raise _RetryableJudgeError(
                f"{url} answered HTTP {status}",
                retry_after=_retry_after(response),
            )
        if status >= 400:
            raise JudgeProtocolError(
                f"judge {url} refused the request with HTTP {status}: "
                f"{response.text[:300]}"
            )
        try:
            body = response.json()
            items = body["results"]
        except (ValueError, KeyError, TypeError) as exc:
            self.stats.failures += 1
            raise _RetryableJudgeError(f"{url} sent a malformed body") from exc
        if not isinstance(items, list) or len(items) != expected:
            self.stats.failures += 1
            got = len(items) if isinstance(items, list) else type(items).__name__
            raise _RetryableJudgeError(f"{url} sent {got} results for {expected} texts")
        self.stats.texts += expected
        if isinstance(body.get("judge"), str):
            self.judge_name = body["judge"]
        return [JudgeResult.from_payload(item) for item in items]


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None  # an HTTP-date: fall back to our own backoff


class BackgroundLoop:
    """An event loop on a daemon thread, for running coroutines from sync code."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self.loop.run_forever, name="judge-client-loop", daemon=True
        )
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=5)
        self.loop.close()
