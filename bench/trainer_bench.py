"""Trainer benchmark: what calling the judge over HTTP costs a training step.

Side by side in one run, on a tiny Llama built here: one PPO (and one GRPO)
run whose steps alternate between the real judge server over HTTP and the
same judge service called in-process (same backend, rubric, batching and
result validation; no socket, JSON or uvicorn). Alternating within one run
means load from other processes on a shared machine hits both sides alike.
The goal is an HTTP step at most 1.15 x the in-process step. Each step's
time is also split into generation, judge and the rest (log-prob passes and
optimisation), from the trainer's own `time/*` and `judge/latency_s`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
JUDGE_CONFIG = REPO / "configs" / "judge" / "cpu.yaml"
GROUP = "trainer"

logger = logging.getLogger(__name__)


def run(quick: bool) -> list[dict]:
    import torch

    torch.set_num_threads(1)
    steps = 8 if quick else 16
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        judge_config = _judge_config(work)
        model_dir, questions = _tiny_policy(work)
        rows: list[dict] = []
        with _judge_server(judge_config) as url:
            client = _alternating_client(judge_config, url)
            for algo in ("ppo", "grpo"):
                raw = _train_config(algo, model_dir, questions, url, steps)
                http, local = _step_times(raw, work / algo, client)
                rows.extend(_rows(algo, http, local))
    return rows


# -- one client, two ways of reaching the judge ------------------------------


def _alternating_client(judge_config: Path, url: str):
    """Odd `score` calls go over HTTP, even ones to an in-process service."""
    from judge_server.backends import create_backend
    from judge_server.config import load_config
    from judge_server.metrics import JudgeMetrics
    from judge_server.protocol import ScoreRequest
    from judge_server.rubrics import load_rubrics
    from judge_server.serving import JudgeService
    from services.common.metrics import new_registry
    from trainer.judge_client import BackgroundLoop, JudgeClient, JudgeResult

    config = load_config(judge_config)
    service = JudgeService(
        config,
        create_backend(config),
        load_rubrics(config.rubrics_dir),
        JudgeMetrics(new_registry()),
    )
    # The service's batcher lives on one loop thread; requests hop onto it
    # from whichever loop the trainer awaits on (TRL's own, for GRPO).
    service_thread = BackgroundLoop()
    service_thread.run(service.start())

    class AlternatingJudgeClient(JudgeClient):
        calls = 0

        async def score(self, texts, prompts=None):
            self.in_process = self.calls % 2 == 1
            self.calls += 1
            return await super().score(texts, prompts)

        async def _post(self, payload, expected):
            if not self.in_process:
                return await super()._post(payload, expected)
            future = asyncio.run_coroutine_threadsafe(
                service.score(ScoreRequest(**payload), "bench"), service_thread.loop
            )
            response = await asyncio.wrap_future(future)
            results = response.model_dump()["results"]
            return [JudgeResult.from_payload(item) for item in results]

        def close(self):  # shared by both runs; the process exit ends it
            pass

    return AlternatingJudgeClient([url], config.default_rubric)


def _step_times(raw: dict, out: Path, client) -> tuple[list[dict], list[dict]]:
    """(HTTP steps, in-process steps), each side's first step dropped."""
    from trainer.config import config_from_dict
    from trainer.run import train

    client.calls = 0  # step 1 over HTTP, step 2 in-process, ...
    result = train(config_from_dict(raw), out, client=client)
    if result.status != "completed":
        raise RuntimeError(f"bench run stopped: {result.error}")
    lines = (out / "metrics.jsonl").read_text().splitlines()
    rows = [json.loads(line) for line in lines][2:]  # warm-up of both sides
    http = [row for row in rows if row["step"] % 2 == 1]
    local = [row for row in rows if row["step"] % 2 == 0]
    return http, local


def _rows(algo: str, http: list[dict], local: list[dict]) -> list[dict]:
    def median(rows, key):
        return statistics.median(row.get(key, 0.0) for row in rows)

    http_s, local_s = median(http, "time/step_s"), median(local, "time/step_s")
    shares = {
        "generation": median(http, "time/generation_s") / http_s,
        "judge": median(http, "judge/latency_s") / http_s,
    }
    shares["optimisation"] = 1.0 - shares["generation"] - shares["judge"]
    note = f"median of {len(http)}+{len(local)} alternating steps, tiny Llama, CPU"
    rows = [
        _row(f"{algo}_step_http", http_s, "s", "", note),
        _row(f"{algo}_step_in_process", local_s, "s", "", note),
        _row(f"{algo}_http_over_in_process", http_s / local_s, "x", "<= 1.15", note),
        _row(
            f"{algo}_judge_latency_http",
            median(http, "judge/latency_s"),
            "s",
            "",
            f"in-process: {median(local, 'judge/latency_s'):.3f} s",
        ),
    ]
    for part, share in shares.items():
        rows.append(_row(f"{algo}_share_{part}", share, "fraction", "", "HTTP steps"))
    return rows


def _row(name, value, unit, goal, note) -> dict:
    return {"group": GROUP, "name": name, "value": value, "unit": unit,
            "goal": goal, "note": note}  # fmt: skip


# -- fixtures: model, prompts, judge server -----------------------------------


def _tiny_policy(work: Path) -> tuple[Path, Path]:
    from rlaif.tiny_model import save_tiny_llama

    corpus = REPO / "data" / "food_qa.jsonl"
    rows = [json.loads(line) for line in corpus.read_text().splitlines() if line]
    texts = [f"{row['question']} {row['answer']}" for row in rows[:2000]]
    path = work / "policy"
    save_tiny_llama(path, texts, vocab_size=1024)
    questions = work / "train.txt"
    questions.write_text("\n".join(str(row.get("question", "")) for row in rows[:64]))
    return path, questions


def _train_config(algo, model_dir, questions, url, steps) -> dict:
    policy = "penalty" if algo == "ppo" else "drop"
    return {
        "algo": algo,
        "model": {"path": str(model_dir)},
        "lora": {"r": 8, "alpha": 16, "dropout": 0.0},
        "generation": {"max_new_tokens": 48},
        "optim": {"lr": 1e-3, "steps": steps, "rollout_batch_size": 16,
                  "micro_batch_size": 8, "torch_threads": 1},
        "grpo": {"num_generations": 4},
        "judge": {"urls": [url], "invalid_policy": policy, "max_invalid_rate": 1.0},
        "prompts": {"train": str(questions)},
        "logging": {"tensorboard": False},
        "checkpoints": {"every": 0},
    }  # fmt: skip


def _judge_config(work: Path) -> Path:
    raw = yaml.safe_load(JUDGE_CONFIG.read_text())
    raw["rubrics_dir"] = str(REPO / raw["rubrics_dir"])
    raw.setdefault("request_log", {})["enabled"] = False
    raw.setdefault("server", {})["log_dir"] = str(work / "logs")
    path = work / "judge.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


class _judge_server:
    """`rlaif judge serve` in a subprocess, for the HTTP side of the bench."""

    def __init__(self, config: Path) -> None:
        self.config = config

    def __enter__(self) -> str:
        import httpx

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        command = [sys.executable, "-m", "rlaif.cli", "judge", "serve",
                   "--config", str(self.config), "--host", "127.0.0.1",
                   "--port", str(port)]  # fmt: skip
        env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
        self.process = subprocess.Popen(command, cwd=REPO, env=env)
        url = f"http://127.0.0.1:{port}"
        deadline = time.time() + 180
        while time.time() < deadline and self.process.poll() is None:
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    return url
            except httpx.HTTPError:
                time.sleep(0.5)
        self.__exit__()
        raise RuntimeError("the judge server did not become ready")

    def __exit__(self, *exc_info) -> None:
        self.process.terminate()
        self.process.wait(timeout=20)
