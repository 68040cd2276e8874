"""A 2-process `accelerate launch` PPO run on CPU (gloo) completes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]


def test_two_process_cpu_launch_completes_and_both_ranks_roll_out(
    tiny_config, fake_judge, tmp_path
):
    url, state = fake_judge
    raw = tiny_config("ppo")
    raw["optim"]["torch_threads"] = 1
    config = tmp_path / "ppo.yaml"
    config.write_text(yaml.safe_dump(raw))
    out = tmp_path / "run"
    launcher = Path(sys.executable).parent / "accelerate"
    command = [
        str(launcher), "launch",
        "--config_file", str(REPO / "configs" / "accelerate" / "cpu-2proc.yaml"),
        "--main_process_port", "0",
        "-m", "rlaif.cli", "train",
        "--config", str(config), "--judge-url", url, "--out", str(out),
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}

    done = subprocess.run(
        command, cwd=REPO, env=env, capture_output=True, text=True, timeout=240
    )

    assert done.returncode == 0, done.stderr[-3000:]
    rows = [
        json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()
    ]
    assert [row["step"] for row in rows] == [1, 2]
    # 2 steps x 2 ranks x 4 rollouts: each rank scored its own batch.
    assert len(state.seen) == 16
    assert (out / "adapter_model.safetensors").is_file()
