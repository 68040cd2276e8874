"""SIGKILL the judge while it logs; restart it during training; slow judge."""

from __future__ import annotations

from reliability.bad_judge import run_bad_judge
from reliability.faults import kill_during_logging, restart_during_training


def test_kill9_while_logging_leaves_readable_parquet_and_loses_at_most_a_window(
    tmp_path,
):
    report = kill_during_logging(tmp_path, clients=10, load_s=2.0, flush_rows=32)

    assert report.problems == []
    assert report.files > 0 and report.unreadable_files == 0
    assert report.rows_acked > report.flush_window_rows  # the kill hit a busy log
    assert report.rows_lost <= report.flush_window_rows


def test_judge_restart_mid_training_is_retried_and_rewards_are_the_judges(tmp_path):
    report = restart_during_training(tmp_path, steps=2, kill_after_step=1)

    assert report.problems == []
    assert report.status == "completed" and report.steps == 2
    assert report.killed_after_step == 1 and report.judge_down_s > 1
    assert report.metrics_finite and report.rewards_checked > 0


def test_judge_slower_than_the_timeout_stops_the_client_not_a_score():
    # Garbage bodies and impossible scores are covered in tests/trainer.
    report = run_bad_judge("slow", timeout_s=0.3, downtime_s=1.0)

    assert report.problems == []
    assert report.outcome.startswith("JudgeUnavailableError")
    assert report.valid_results == 0
