"""Schemathesis against both services' own OpenAPI schemas (bounded)."""

from __future__ import annotations

from reliability.fuzz import fuzz_service

EXAMPLES = 25


def test_judge_schema_fuzz_gives_no_5xx_and_only_json_4xx(judge):
    report = fuzz_service("judge", judge, EXAMPLES)

    assert report.problems == []
    assert report.operations >= 4 and report.examples >= 2 * EXAMPLES
    # Both valid and invalid bodies reached the scoring code.
    assert report.statuses.get("200", 0) > 0 and report.statuses.get("400", 0) > 0


def test_chat_schema_fuzz_gives_no_5xx_and_only_json_4xx(chat):
    report = fuzz_service("chat", chat, EXAMPLES)

    assert report.problems == []
    assert report.operations >= 4 and report.examples >= 2 * EXAMPLES
    assert report.statuses.get("400", 0) > 0
