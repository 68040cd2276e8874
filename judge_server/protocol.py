"""Request and response bodies of the judge HTTP API (see DESIGN.md)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

# A text of only whitespace has nothing to judge: refused (400), never scored.
NonEmptyText = Annotated[str, StringConstraints(min_length=1, pattern=r"\S")]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ScoreItem(_Body):
    """A response to judge, with the question it answers."""

    prompt: str | None = None
    response: NonEmptyText


class ScoreRequest(_Body):
    """``POST /v1/score``: either ``texts`` or ``items``, not both."""

    rubric: str | None = Field(
        None, description="Rubric name; the server's default rubric when absent."
    )
    texts: list[NonEmptyText] | None = None
    items: list[ScoreItem] | None = None

    @model_validator(mode="after")
    def _exactly_one_input(self) -> ScoreRequest:
        given = [name for name in ("texts", "items") if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError(
                "send exactly one of 'texts' (a list of strings) or 'items' (a "
                f"list of {{prompt, response}}), got {given or 'neither'}"
            )
        if not getattr(self, given[0]):
            raise ValueError(f"'{given[0]}' is empty: send at least one text")
        return self

    def pairs(self) -> list[tuple[str | None, str]]:
        """(prompt, text) per input, in request order."""
        if self.texts is not None:
            return [(None, text) for text in self.texts]
        assert self.items is not None
        return [(item.prompt, item.response) for item in self.items]


class ScoreResult(BaseModel):
    """One text's judgement: ``score`` and ``reward`` are null when invalid."""

    score: float | None
    reward: float | None
    valid: bool
    raw: str
    error: str | None


class ScoreResponse(BaseModel):
    rubric: str
    judge: str
    results: list[ScoreResult]


class RewardRequest(BaseModel):
    """``POST /get_reward``, OpenRLHF's remote reward-model protocol.

    ``query`` holds prompt + response strings; when ``prompts`` is given and
    a query starts with its prompt, only the response part is judged.
    """

    model_config = ConfigDict(extra="ignore")

    query: list[NonEmptyText] = Field(min_length=1)
    prompts: list[str] | None = None
    labels: list[Any] | None = None
    rubric: str | None = None

    @model_validator(mode="after")
    def _prompts_match_queries(self) -> RewardRequest:
        if self.prompts is not None and len(self.prompts) != len(self.query):
            raise ValueError(
                f"'prompts' has {len(self.prompts)} entries but 'query' has "
                f"{len(self.query)}: send one prompt per query or none"
            )
        return self


class RewardResponse(BaseModel):
    """Rewards and scores in query order; null where the judge was invalid."""

    rewards: list[float | None]
    scores: list[float | None]


class RubricInfo(BaseModel):
    name: str
    description: str
    default: bool


class RubricsResponse(BaseModel):
    rubrics: list[RubricInfo]
    judge: str
    mode: str
