"""Rubrics: the scoring instruction a judge follows, loaded from YAML.

A rubric carries the instruction and one good and one bad worked example
(for LLM judges, rendered into the prompt), plus labelled texts, labelled
short phrases and negation cues for judges that learn from examples instead
of reading an instruction (the embedding judge). Files live in
``configs/rubrics/<name>.yaml``; the file name is the rubric name clients
send.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from judge_server.errors import JudgeConfigError


class WorkedExample(BaseModel):
    """An example text and the score the judge should give it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    text: str = Field(min_length=1)
    score: float = Field(ge=0.0, le=1.0)


class LabelledText(BaseModel):
    """A text labelled 1 (meets the rubric) or 0 (does not)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    text: str = Field(min_length=1)
    label: int = Field(ge=0, le=1)


class NegationCues(BaseModel):
    """Words that exclude or imitate what follows: "made *without* lard".

    The embedding judge ignores ingredient phrases within ``scope_words``
    words after a cue (up to the end of the clause), and words that carry a
    cue suffix themselves ("gelatin-free", "chicken-style").
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    scope_words: int = Field(4, ge=0)
    words: tuple[str, ...] = ()
    suffixes: tuple[str, ...] = ()


class Rubric(BaseModel):
    """One scoring policy, as read from its YAML file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")
    description: str
    instruction: str = Field(min_length=1)
    good_example: WorkedExample
    bad_example: WorkedExample
    examples: tuple[LabelledText, ...] = ()
    phrases: tuple[LabelledText, ...] = ()
    negation_cues: NegationCues = NegationCues()

    @model_validator(mode="after")
    def _examples_cover_both_labels(self) -> Rubric:
        for field in ("examples", "phrases"):
            labels = {example.label for example in getattr(self, field)}
            if labels and labels != {0, 1}:
                raise ValueError(
                    f"{field} must contain texts of both labels 0 and 1, got "
                    f"only label(s) {sorted(labels)}"
                )
        return self


def load_rubric(path: Path) -> Rubric:
    """Read one rubric file; errors name the file and the field."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise JudgeConfigError(f"cannot read rubric {str(path)!r}: {exc}") from exc
    if not isinstance(raw, dict):
        raise JudgeConfigError(f"rubric {str(path)!r} must be a YAML mapping")
    raw.setdefault("name", path.stem)
    if raw["name"] != path.stem:
        raise JudgeConfigError(
            f"rubric {str(path)!r} has name {raw['name']!r}: the name must equal "
            f"the file name {path.stem!r}"
        )
    try:
        return Rubric.model_validate(raw)
    except ValidationError as exc:
        raise JudgeConfigError(f"rubric {str(path)!r} is invalid: {exc}") from exc


def load_rubrics(folder: Path) -> dict[str, Rubric]:
    """Every ``*.yaml`` rubric in ``folder``, by name."""
    paths = sorted(Path(folder).glob("*.yaml"))
    if not paths:
        raise JudgeConfigError(
            f"no rubric files (*.yaml) in {str(folder)!r}: set rubrics_dir to the "
            "folder that holds them (configs/rubrics in this repository)"
        )
    return {path.stem: load_rubric(path) for path in paths}
