"""Whole training runs on the tiny policy: PPO through the CLI, outages, resume."""

from __future__ import annotations

import json
import math

import pytest
import yaml

from rlaif.cli import main
from trainer.config import config_from_dict
from trainer.run import train


def _metrics(out_dir):
    return [
        json.loads(line)
        for line in (out_dir / "metrics.jsonl").read_text().split("\n")
        if line
    ]


def _all_finite(rows) -> bool:
    return all(math.isfinite(v) for row in rows for v in row.values())


def test_ppo_step_at_lr_zero_with_fresh_adapter_has_zero_kl(
    tiny_config, fake_judge, tmp_path
):
    """Through `rlaif train`; the artifacts must load and make the model stop."""
    from peft import PeftConfig, PeftModel
    from pyarrow import parquet
    from transformers import AutoModelForCausalLM, GenerationConfig

    url, state = fake_judge
    config_path = tmp_path / "ppo.yaml"
    config_path.write_text(yaml.safe_dump(tiny_config("ppo")))
    out = tmp_path / "run"

    code = main(
        [
            "train",
            "--config",
            str(config_path),
            "--judge-url",
            url,
            "--out",
            str(out),
            "--set",
            "optim.lr=0",
            "--max-steps",
            "2",
        ]
    )

    assert code == 0
    rows = _metrics(out)
    assert [r["step"] for r in rows] == [1, 2]
    assert all(abs(r["objective/kl"]) <= 1e-6 for r in rows)
    assert len(state.seen) == 8  # 2 steps x 4 rollouts, each judged once
    samples = parquet.read_table(out / "samples.parquet").to_pylist()
    assert {s["response"] for s in samples} <= set(state.seen)
    assert set(samples[0]) >= {"step", "prompt", "response", "score", "reward"}
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["steps"] == 2
    assert PeftConfig.from_pretrained(out).modules_to_save is None
    generation = GenerationConfig.from_pretrained(out)
    base = AutoModelForCausalLM.from_pretrained(tiny_config()["model"]["path"])
    assert generation.eos_token_id == base.config.eos_token_id
    assert generation.pad_token_id not in (None, generation.eos_token_id)
    PeftModel.from_pretrained(base, out)  # loads without error


@pytest.mark.parametrize("algo", ["ppo", "grpo"])
def test_judge_down_mid_run_checkpoints_stops_then_resume_continues_the_steps(
    algo, tiny_config, fake_judge, tmp_path
):
    url, state = fake_judge
    state.fail_after = 1  # step 1's request is answered, then only 503s
    raw = tiny_config(algo, judge={"urls": [url]}, checkpoints={"every": 0})
    raw["optim"]["steps"] = 3
    out = tmp_path / "run"

    stopped = train(config_from_dict(raw), out)

    assert stopped.status == "judge_unavailable"
    assert "max_downtime_s" in str(stopped.error)
    assert state.requests > 2  # retried before giving up
    rows = _metrics(out)
    assert [r["step"] for r in rows] == [1] and _all_finite(rows)
    checkpoint = out / "checkpoints" / "checkpoint-1"
    assert _adapter_is_finite(checkpoint / "adapter" if algo == "ppo" else checkpoint)
    assert (
        json.loads((out / "summary.json").read_text())["status"] == "judge_unavailable"
    )

    state.fail_after = None
    resumed = train(config_from_dict(raw), out, resume=True)

    assert resumed.status == "completed" and resumed.steps == 3
    assert [r["step"] for r in _metrics(out)] == [1, 2, 3]


def test_invalid_rate_over_the_limit_stops_the_run_with_a_clear_error(
    tiny_config, fake_judge, tmp_path
):
    url, state = fake_judge
    state.invalid_every = 1  # every score invalid, even on the retry
    raw = tiny_config(
        "ppo",
        judge={"urls": [url], "max_invalid_rate": 0.05, "invalid_rate_min_samples": 4},
    )

    result = train(config_from_dict(raw), tmp_path / "run")

    assert result.status == "invalid_rate"
    assert "judge/invalid_rate" in str(result.error)
    assert (tmp_path / "run" / "checkpoints").is_dir()


def _adapter_is_finite(path) -> bool:
    from safetensors.torch import load_file

    tensors = load_file(str(path / "adapter_model.safetensors"))
    return bool(tensors) and all(t.isfinite().all() for t in tensors.values())


@pytest.mark.parametrize("algo", ["ppo", "grpo", "rloo"])
def test_each_algorithm_finishes_steps_against_the_real_judge(
    algo, tiny_config, real_judge_url, tmp_path
):
    raw = tiny_config(algo, judge={"urls": [real_judge_url], "timeout_s": 60})

    result = train(config_from_dict(raw), tmp_path / algo)

    assert result.status == "completed" and result.steps == 2
    rows = _metrics(tmp_path / algo)
    assert len(rows) == 2 and _all_finite(rows)
    assert all(r["judge/invalid_rate"] <= 0.05 for r in rows)
