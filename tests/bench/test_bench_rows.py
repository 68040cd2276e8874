"""Bench modules' rows: the shape bench/run.py renders, and the prefix cache."""

from __future__ import annotations

import pytest

from bench import chat_bench, judge_bench
from bench.run import COLUMNS, render


def assert_rows(rows: list[dict]) -> None:
    assert rows
    for row in rows:
        assert tuple(row) == COLUMNS
        assert isinstance(row["value"], float | int), row
        assert row["unit"] and row["name"] and row["group"]
    render(rows)  # must not raise


def test_common_prefix_length_stops_at_the_first_difference():
    assert judge_bench.common_prefix_length([[1, 2, 3, 4], [1, 2, 5], [1, 2, 3]]) == 2
    assert judge_bench.common_prefix_length([[7, 8], [7, 8, 9]]) == 2


def test_prefix_cache_rows_agree_with_the_full_pass_and_have_the_table_shape():
    rows = judge_bench.prefix_cache_rows(quick=True)
    assert_rows(rows)
    share, speed = (row["value"] for row in rows)
    assert 0.5 < share < 1  # the rubric dominates every judge prompt
    assert speed > 0


def test_chat_ratio_is_the_median_of_per_round_ratios():
    rounds = [
        {"bare": (100, 1.0), "stream": (100, 1.25), "plain": (100, 1.0)},
        {"bare": (100, 2.0), "stream": (100, 2.5), "plain": (100, 2.0)},  # slow
        {"bare": (100, 1.0), "stream": (100, 1.0), "plain": (100, 4.0)},  # noisy
    ]
    rows = chat_bench._rows(rounds, max_tokens=100)
    assert_rows(rows)
    assert [row["value"] for row in rows[1:]] == pytest.approx([0.8, 1.0])
    assert rows[0]["value"] == pytest.approx(100.0)
    assert "differ" not in rows[0]["note"]
