"""Fixtures: a tiny policy built locally and judges to train against."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from trainer_fakes import CORPUS, QUESTIONS, JudgeState, ServerThread, build_fake_judge

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A ~100k-parameter Llama and its tokenizer, saved in HF format."""
    import torch

    from rlaif.tiny_model import MICRO_SHAPE, save_tiny_llama

    torch.set_num_threads(1)
    path = tmp_path_factory.mktemp("tiny-policy")
    save_tiny_llama(path, CORPUS * 4 + QUESTIONS, vocab_size=320, shape=MICRO_SHAPE)
    return path


@pytest.fixture(scope="session")
def questions_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("prompts") / "train.txt"
    path.write_text("\n".join(QUESTIONS) + "\n")
    return path


@pytest.fixture(scope="session")
def _fake_judge_server():
    state = JudgeState()
    server = ServerThread(build_fake_judge(state))
    yield server, state
    server.stop()


@pytest.fixture
def fake_judge(_fake_judge_server):
    """(url, state) of the fake judge, its state reset for each test."""
    server, state = _fake_judge_server
    state.reset()
    return server.url, state


@pytest.fixture
def tiny_config(tiny_model_dir, questions_file):
    """A PPO config dict for the tiny policy: 2 steps of 4 rollouts."""

    def make(algo: str = "ppo", **sections) -> dict:
        raw = {
            "algo": algo,
            "model": {"path": str(tiny_model_dir)},
            "lora": {
                "r": 4,
                "alpha": 8,
                "dropout": 0.0,
                "target_modules": ["q_proj", "v_proj"],
            },
            "generation": {"max_new_tokens": 8, "temperature": 1.0},
            "optim": {
                "lr": 1e-3,
                "steps": 2,
                "rollout_batch_size": 4,
                "micro_batch_size": 4,
            },
            "kl": {"kl_coef": 0.05},
            "grpo": {"num_generations": 2},
            "rloo": {"num_generations": 2},
            "judge": {
                "urls": [],
                "max_downtime_s": 1.0,
                "retry_initial_s": 0.05,
                "retry_max_s": 0.2,
            },
            "prompts": {"train": str(questions_file)},
            "logging": {"tensorboard": False},
            "checkpoints": {"every": 1, "keep": 2},
        }
        for name, values in sections.items():
            raw.setdefault(name, {}).update(values)
        return raw

    return make


REPO = Path(__file__).resolve().parents[2]
JUDGE_CONFIG = REPO / "configs" / "judge" / "cpu.yaml"


@pytest.fixture(scope="session")
def real_judge_url(tmp_path_factory):
    """The project's own judge server (CPU backend) in a subprocess."""
    import sys

    from services.common.process import ServiceProcess, free_port

    if not JUDGE_CONFIG.is_file():
        pytest.skip(f"the real judge is not built yet: {JUDGE_CONFIG} is missing")
    port = free_port()
    command = [sys.executable, "-m", "rlaif.cli", "judge", "serve"]
    command += ["--config", str(JUDGE_CONFIG), "--host", "127.0.0.1"]
    command += ["--port", str(port)]
    judge = ServiceProcess(
        command,
        port=port,
        log_path=tmp_path_factory.mktemp("real-judge") / "judge.log",
        name="judge serve",
        env={"HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"},
        cwd=REPO,
        stop_timeout=20.0,
    )
    with judge:
        yield judge.url
