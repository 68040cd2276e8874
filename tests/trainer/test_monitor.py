"""Per-step metrics: names shared by all algorithms, Prometheus, samples."""

from __future__ import annotations

import asyncio

import httpx
from pyarrow import parquet

from trainer.judge_client import JudgeResult
from trainer.monitor import PrometheusExporter, RunMonitor
from trainer.rewards import JudgeRewards


class _Client:
    async def score(self, texts):
        return [JudgeResult(0.75, 1.0986, True) for _ in texts]


def _rewards() -> JudgeRewards:
    return JudgeRewards(
        _Client(),
        invalid_policy="penalty",
        invalid_penalty=-3.0,
        max_invalid_rate=0.05,
        invalid_rate_min_samples=10,
        missing_eos_penalty=1.0,
    )


def test_trl_logs_and_judge_records_merge_under_shared_names(tmp_path):
    rewards = _rewards()
    monitor = RunMonitor(tmp_path, rewards, total_steps=2, tensorboard=False)
    asyncio.run(rewards.rewards(["a", "b"], ["q1", "q2"], [True, False], [3, 9]))

    row = monitor.step_metrics(1, {"kl": 0.25, "entropy": 1.5, "loss": 0.1})
    monitor.close()

    assert row["objective/kl"] == 0.25 and row["objective/entropy"] == 1.5
    assert row["reward/mean"] == (1.0986 + 0.0986) / 2
    assert row["judge/score_mean"] == 0.75
    assert row["response/length_mean"] == 6
    assert row["response/missing_eos_rate"] == 0.5
    samples = parquet.read_table(tmp_path / "samples.parquet").to_pylist()
    assert [(s["step"], s["prompt"], s["response"]) for s in samples] == [
        (1, "q1", "a"),
        (1, "q2", "b"),
    ]


def test_prometheus_endpoint_serves_the_latest_step():
    exporter = PrometheusExporter(0)
    try:
        exporter.update({"reward/mean": 0.5, "objective/kl": 0.01})
        body = httpx.get(f"http://127.0.0.1:{exporter.port}/metrics").text
    finally:
        exporter.close()

    assert "rlaif_trainer_reward_mean 0.5" in body
    assert "rlaif_trainer_objective_kl 0.01" in body
