"""Validate a judge on labelled texts before training against it.

``rlaif judge validate`` sends every text of a JSONL file (rows
``{"text": str, "label": 1 | 0}``, 1 = good) to a running judge and reports
accuracy, precision, recall and F1 of the "good" class, the confusion
matrix at a threshold, the mean score of good and of bad texts, and how
many replies were invalid. An invalid reply counts as wrong in accuracy (it
is neither a pass nor a fail the judge committed to) and is reported apart.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from judge_server.errors import JudgeConfigError


@dataclass(frozen=True)
class LabelledRow:
    text: str
    label: int


def read_labelled(path: Path) -> list[LabelledRow]:
    """Rows of a labelled JSONL file; errors name the line and the fix."""
    rows = []
    with Path(path).open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                data = json.loads(line)
                text, label = data["text"], data["label"]
            except (json.JSONDecodeError, KeyError, TypeError) as exc:
                raise JudgeConfigError(
                    f"{path}:{number}: expected a JSON object with 'text' and "
                    f"'label', got {line.strip()[:80]!r} ({exc})"
                ) from exc
            if label not in (0, 1) or not isinstance(text, str) or not text:
                raise JudgeConfigError(
                    f"{path}:{number}: 'label' must be 0 or 1 and 'text' a non-empty "
                    f"string, got label={label!r}"
                )
            rows.append(LabelledRow(text, int(label)))
    if not rows:
        raise JudgeConfigError(f"{path} has no labelled rows")
    return rows


def validation_report(
    labels: Sequence[int], scores: Sequence[float | None], threshold: float = 0.5
) -> dict[str, Any]:
    """Classification metrics of judge scores against labels."""
    tp = fp = tn = fn = invalid = 0
    good_scores, bad_scores = [], []
    for label, score in zip(labels, scores, strict=True):
        if score is None:
            invalid += 1
            continue
        (good_scores if label == 1 else bad_scores).append(score)
        predicted = 1 if score >= threshold else 0
        if predicted == 1:
            tp, fp = (tp + 1, fp) if label == 1 else (tp, fp + 1)
        else:
            tn, fn = (tn + 1, fn) if label == 0 else (tn, fn + 1)
    precision = _ratio(tp, tp + fp)
    recall = _ratio(tp, tp + fn)
    f1 = _ratio(2 * precision * recall, precision + recall) if precision else 0.0
    return {
        "n": len(labels),
        "threshold": threshold,
        "accuracy": _ratio(tp + tn, len(labels)),
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "confusion_matrix": {
            "true_positive": tp,
            "false_positive": fp,
            "true_negative": tn,
            "false_negative": fn,
        },
        "invalid": invalid,
        "mean_score_good": _mean(good_scores),
        "mean_score_bad": _mean(bad_scores),
    }


def score_texts(
    judge_url: str,
    texts: Sequence[str],
    *,
    rubric: str | None = None,
    api_key: str | None = None,
    batch_size: int = 64,
    timeout_s: float = 300.0,
) -> list[dict[str, Any]]:
    """Results of ``POST /v1/score`` for every text, in order."""
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    results: list[dict[str, Any]] = []
    with httpx.Client(
        base_url=judge_url.rstrip("/"), headers=headers, timeout=timeout_s
    ) as client:
        for start in range(0, len(texts), batch_size):
            body: dict[str, Any] = {"texts": list(texts[start : start + batch_size])}
            if rubric:
                body["rubric"] = rubric
            response = client.post("/v1/score", json=body)
            if response.status_code != 200:
                raise RuntimeError(
                    f"judge at {judge_url} answered {response.status_code}: "
                    f"{response.text[:300]}"
                )
            results.extend(response.json()["results"])
    return results


def _ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator else 0.0


def _mean(values: Sequence[float]) -> float | None:
    return math.fsum(values) / len(values) if values else None
