"""The interface every judge backend implements.

The serving layer hands a backend a batch of :class:`JudgeRequest` and gets
one :class:`~judge_server.scores.JudgeOutcome` per request, in order. A
backend never raises for one bad text: an unparseable reply is an invalid
outcome. It raises :class:`~judge_server.errors.BackendUnavailableError`
when it cannot judge at all (an endpoint that keeps failing), so the whole
request answers 503 instead of a batch of fake scores.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from judge_server.rubrics import Rubric
from judge_server.scores import JudgeOutcome


@dataclass(frozen=True)
class JudgeRequest:
    """One text to judge against one rubric; ``prompt`` is the question."""

    rubric: Rubric
    text: str
    prompt: str | None = None


class JudgeBackend(abc.ABC):
    """Scores batches of texts; one instance per server process."""

    #: The judge model's name, reported in every response and log row.
    model_name: str = "unknown"
    #: How scores are produced: "embedding", "text" or "logprob".
    mode: str = "text"

    async def start(self, rubrics: Mapping[str, Rubric]) -> None:
        """Load models and precompute per-rubric state; called once."""
        return None

    @property
    def ready(self) -> bool:
        """True once :meth:`start` finished and the backend can judge."""
        return True

    def check_fits(self, request: JudgeRequest) -> None:
        """Raise TextTooLongError if the rendered prompt exceeds the context.

        Called before a text is queued, so an over-long text is a 400 for
        its request and never an empty judge output parsed as a score.
        """
        return None

    @abc.abstractmethod
    async def judge(self, batch: Sequence[JudgeRequest]) -> list[JudgeOutcome]:
        """One outcome per request, in the same order."""

    async def close(self) -> None:
        """Release models, clients and threads."""
        return None
