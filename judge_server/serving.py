"""Scoring logic of the judge server, independent of HTTP.

:class:`JudgeService` checks requests against the limits, sends the texts
through the micro-batcher to the backend, turns outcomes into results with
rewards, counts them and logs one Parquet row per text. The FastAPI routes
in api.py only translate bodies to calls of this class.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone

import pyarrow as pa

from judge_server.backends.base import JudgeBackend, JudgeRequest
from judge_server.batcher import MicroBatcher
from judge_server.config import JudgeConfig
from judge_server.errors import (
    QueryPromptMismatchError,
    TextTooLongError,
    TooManyTextsError,
    UnknownRubricError,
)
from judge_server.metrics import JudgeMetrics
from judge_server.protocol import (
    RewardRequest,
    RewardResponse,
    RubricInfo,
    RubricsResponse,
    ScoreRequest,
    ScoreResponse,
    ScoreResult,
)
from judge_server.rubrics import Rubric
from judge_server.scores import JudgeOutcome, reward_from_score
from services.common.request_log import RequestLog

logger = logging.getLogger(__name__)

REQUEST_LOG_SCHEMA = pa.schema(
    [
        ("timestamp", pa.timestamp("us", tz="UTC")),
        ("request_id", pa.string()),
        ("rubric", pa.string()),
        ("judge", pa.string()),
        ("prompt", pa.string()),
        ("text", pa.string()),
        ("raw", pa.string()),
        ("score", pa.float64()),
        ("reward", pa.float64()),
        ("valid", pa.bool_()),
        ("error", pa.string()),
        ("latency_s", pa.float64()),
    ]
)


def result_from_outcome(outcome: JudgeOutcome) -> ScoreResult:
    """The API result of one outcome; invalid stays invalid, never a default."""
    if outcome.score is None:
        return ScoreResult(
            score=None, reward=None, valid=False, raw=outcome.raw, error=outcome.error
        )
    return ScoreResult(
        score=outcome.score,
        reward=reward_from_score(outcome.score),
        valid=True,
        raw=outcome.raw,
        error=None,
    )


class JudgeService:
    """Scores texts against rubrics with one backend."""

    def __init__(
        self,
        config: JudgeConfig,
        backend: JudgeBackend,
        rubrics: Mapping[str, Rubric],
        metrics: JudgeMetrics,
        request_log: RequestLog | None = None,
    ) -> None:
        if config.default_rubric not in rubrics:
            raise UnknownRubricError(
                f"default_rubric {config.default_rubric!r} is not among the loaded "
                f"rubrics {sorted(rubrics)!r}"
            )
        self.config = config
        self.backend = backend
        self.rubrics = dict(rubrics)
        self.metrics = metrics
        self.request_log = request_log
        batching = config.batching
        self.batcher: MicroBatcher[JudgeRequest, JudgeOutcome] = MicroBatcher(
            backend.judge,
            max_batch_size=batching.max_batch_size,
            max_wait_s=batching.max_wait_ms / 1000.0,
            max_queue=batching.max_queue,
            concurrency=batching.concurrency,
            on_batch=metrics.observe_batch,
            on_depth=metrics.queue_depth.set,
        )
        self._started = False

    @property
    def ready(self) -> bool:
        return self._started and self.backend.ready

    async def start(self) -> None:
        await self.backend.start(self.rubrics)
        await self.batcher.start()
        if self.request_log is not None:
            await self.request_log.start()
        self._started = True
        logger.info(
            "judge ready: backend %s (%s), rubrics %s",
            self.backend.model_name,
            self.backend.mode,
            ", ".join(sorted(self.rubrics)),
        )

    async def close(self) -> None:
        self._started = False
        await self.batcher.close()
        if self.request_log is not None:
            await self.request_log.close()
        await self.backend.close()

    def list_rubrics(self) -> RubricsResponse:
        infos = [
            RubricInfo(
                name=name,
                description=rubric.description,
                default=name == self.config.default_rubric,
            )
            for name, rubric in sorted(self.rubrics.items())
        ]
        return RubricsResponse(
            rubrics=infos, judge=self.backend.model_name, mode=self.backend.mode
        )

    async def score(self, request: ScoreRequest, request_id: str) -> ScoreResponse:
        rubric = self._rubric(request.rubric)
        results = await self.score_pairs(rubric, request.pairs(), request_id)
        return ScoreResponse(
            rubric=rubric.name, judge=self.backend.model_name, results=results
        )

    async def get_reward(
        self, request: RewardRequest, request_id: str
    ) -> RewardResponse:
        rubric = self._rubric(request.rubric)
        prompts = request.prompts or [None] * len(request.query)
        pairs = [
            _split_query(index, query, prompt)
            for index, (query, prompt) in enumerate(
                zip(request.query, prompts, strict=True)
            )
        ]
        results = await self.score_pairs(rubric, pairs, request_id)
        return RewardResponse(
            rewards=[r.reward for r in results], scores=[r.score for r in results]
        )

    async def score_pairs(
        self,
        rubric: Rubric,
        pairs: Sequence[tuple[str | None, str]],
        request_id: str,
    ) -> list[ScoreResult]:
        """Judge (prompt, text) pairs; raises 4xx errors before queueing."""
        started = time.perf_counter()
        requests = [JudgeRequest(rubric, text, prompt) for prompt, text in pairs]
        self._check_limits(requests)
        outcomes = await self.batcher.submit(requests)
        latency = time.perf_counter() - started
        results = [result_from_outcome(outcome) for outcome in outcomes]
        self._record(requests, outcomes, results, request_id, latency)
        return results

    def _rubric(self, name: str | None) -> Rubric:
        name = name or self.config.default_rubric
        try:
            return self.rubrics[name]
        except KeyError:
            raise UnknownRubricError(
                f"unknown rubric {name!r}: choose one of {sorted(self.rubrics)!r} "
                "(GET /v1/rubrics lists them)"
            ) from None

    def _check_limits(self, requests: Sequence[JudgeRequest]) -> None:
        limits = self.config.limits
        if len(requests) > limits.max_texts_per_request:
            raise TooManyTextsError(
                f"{len(requests)} texts in one request; the limit is "
                f"{limits.max_texts_per_request}: split the request"
            )
        for index, request in enumerate(requests):
            length = len(request.text) + len(request.prompt or "")
            if length > limits.max_text_chars:
                raise TextTooLongError(
                    f"text {index} has {length} characters (prompt included); the "
                    f"limit is {limits.max_text_chars}: shorten it"
                )
            try:
                self.backend.check_fits(request)
            except TextTooLongError as exc:
                raise TextTooLongError(f"text {index}: {exc.message}") from None

    def _record(
        self,
        requests: Sequence[JudgeRequest],
        outcomes: Sequence[JudgeOutcome],
        results: Sequence[ScoreResult],
        request_id: str,
        latency: float,
    ) -> None:
        now = datetime.now(timezone.utc)
        for request, outcome, result in zip(requests, outcomes, results, strict=True):
            self.metrics.texts_scored.labels(valid=str(result.valid).lower()).inc()
            if result.score is None:
                self.metrics.invalid_replies.labels(
                    reason=outcome.reason or "other"
                ).inc()
            else:
                self.metrics.score.observe(result.score)
            if self.request_log is not None:
                self.request_log.append(
                    {
                        "timestamp": now,
                        "request_id": request_id,
                        "rubric": request.rubric.name,
                        "judge": self.backend.model_name,
                        "prompt": request.prompt,
                        "text": request.text,
                        "raw": result.raw,
                        "score": result.score,
                        "reward": result.reward,
                        "valid": result.valid,
                        "error": result.error,
                        "latency_s": latency,
                    }
                )


def _split_query(index: int, query: str, prompt: str | None) -> tuple[str | None, str]:
    """OpenRLHF sends prompt + response; judge the response part only.

    A query that does not continue its prompt, or adds nothing to it, is
    refused: judging the whole query would score the user's words (a
    question about bacon) as if the assistant had written them.
    """
    if not prompt:
        return None, query
    response = query[len(prompt) :] if query.startswith(prompt) else None
    if response is None or not response.strip():
        problem = "does not start with" if response is None else "adds nothing to"
        raise QueryPromptMismatchError(
            f"query[{index}] {problem} prompts[{index}]: send each query as "
            "its prompt followed by the response, or omit prompts"
        )
    return prompt, response
