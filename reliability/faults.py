"""Fault injection: SIGKILL the judge while it logs, restart it mid-training.

``kill_during_logging``: clients score texts with unique request ids while
the judge writes its Parquet request log; the judge gets SIGKILL mid-load.
Afterwards every ``*.parquet`` file must open, and the rows lost (texts the
judge answered 200 for but that are on no file) must not exceed the flush
window: ``request_log.flush_rows``.

``restart_during_training``: ``rlaif train`` runs the tiny policy against a
real judge; after the first steps the judge gets SIGKILL and comes back on
the same port seconds later. The run must complete every step with finite
metrics, and every logged reward must be the judge's: its score equals
what the restarted judge answers for the same text, and the reward is
``log(s / (1 - s))`` of that score (less the missing-EOS penalty), or the
configured penalty for an invalid score, never a made-up value.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import subprocess
import sys
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pyarrow.parquet as pq
import yaml

from reliability.load import judge_body
from reliability.services import (
    REPO_ROOT,
    ServiceProcess,
    build_tiny_base,
    judge_process,
)

QUESTIONS = [
    "What can I cook tonight?",
    "How do I make a quick soup?",
    "What goes well with rice?",
    "Any idea for a picnic?",
    "What is a good curry?",
    "What should I grill this weekend?",
    "How do I season a stir fry?",
    "What can I bake for breakfast?",
]


@dataclass
class KillReport:
    """Parquet state after SIGKILL under load."""

    load_s: float
    requests_acked: int
    rows_acked: int
    rows_on_disk: int
    rows_lost: int
    flush_window_rows: int
    files: int
    unreadable_files: int
    leftover_temporary_files: int
    problems: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def kill_during_logging(
    folder: Path,
    *,
    clients: int = 20,
    load_s: float = 5.0,
    texts_per_request: int = 4,
    flush_rows: int = 64,
    flush_seconds: float = 1.0,
) -> KillReport:
    """SIGKILL the judge after ``load_s`` s of load; count what survived."""
    judge = judge_process(
        folder,
        request_log={"flush_rows": flush_rows, "flush_seconds": flush_seconds},
    )
    acked: dict[str, int] = {}
    with judge:
        asyncio.run(
            _score_until_killed(judge, clients, load_s, texts_per_request, acked)
        )
    return _survivors(folder / "logs" / "judge", acked, load_s, flush_rows)


async def _score_until_killed(
    judge: ServiceProcess,
    clients: int,
    load_s: float,
    texts_per_request: int,
    acked: dict[str, int],
) -> None:
    body = judge_body(texts_per_request)
    stop = asyncio.Event()

    async def client_loop(client: httpx.AsyncClient, number: int) -> None:
        sent = 0
        while not stop.is_set():
            request_id = uuid.uuid4().hex
            try:
                response = await client.post(
                    f"{judge.url}/v1/score",
                    json=body(number * 100_000 + sent),
                    headers={"X-Request-ID": request_id},
                )
            except httpx.HTTPError:
                return  # the judge is gone
            sent += 1
            if response.status_code == 200:
                acked[request_id] = len(response.json()["results"])

    async def killer() -> None:
        await asyncio.sleep(load_s)
        await asyncio.to_thread(judge.kill9)
        stop.set()

    async with httpx.AsyncClient(timeout=30.0) as client:
        await asyncio.gather(
            killer(), *(client_loop(client, n) for n in range(clients))
        )


def _survivors(
    root: Path, acked: dict[str, int], load_s: float, flush_rows: int
) -> KillReport:
    files = sorted(p for p in root.rglob("*.parquet") if not p.name.startswith("."))
    temporary = list(root.rglob(".*.tmp"))
    on_disk: dict[str, int] = {}
    unreadable = 0
    problems = []
    for path in files:
        try:
            ids = pq.read_table(path, columns=["request_id"]).column(0).to_pylist()
        except Exception as exc:  # any failure to read is the finding
            unreadable += 1
            problems.append(f"{path.name} is unreadable: {exc}")
            continue
        for request_id in ids:
            on_disk[request_id] = on_disk.get(request_id, 0) + 1
    lost = sum(max(0, n - on_disk.get(rid, 0)) for rid, n in acked.items())
    if lost > flush_rows:
        problems.append(
            f"{lost} acknowledged rows lost, more than the flush window of "
            f"{flush_rows} rows"
        )
    if not acked:
        problems.append("no request was answered before the kill")
    return KillReport(
        load_s=load_s,
        requests_acked=len(acked),
        rows_acked=sum(acked.values()),
        rows_on_disk=sum(on_disk.values()),
        rows_lost=lost,
        flush_window_rows=flush_rows,
        files=len(files),
        unreadable_files=unreadable,
        leftover_temporary_files=len(temporary),
        problems=problems,
    )


@dataclass
class RestartReport:
    """A training run across a judge restart."""

    status: str
    steps: int
    target_steps: int
    judge_down_s: float
    killed_after_step: int
    metrics_finite: bool
    samples: int
    rewards_checked: int
    invalid_samples: int
    wall_s: float
    problems: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def restart_during_training(
    folder: Path,
    *,
    steps: int = 6,
    kill_after_step: int = 2,
    down_s: float = 3.0,
    algo: str = "ppo",
) -> RestartReport:
    """Train ``steps`` steps; SIGKILL and restart the judge after a step."""
    folder.mkdir(parents=True, exist_ok=True)
    base = build_tiny_base(folder / "base")
    judge = judge_process(folder / "judge")
    config = _train_config(folder, base, steps, algo)
    out = folder / "run"
    started = time.monotonic()
    with judge:
        trainer = _start_trainer(config, judge.url, out, folder / "train.log")
        try:
            killed_at = _wait_for_step(out, kill_after_step, trainer)
            down_started = time.monotonic()
            judge.kill9()
            time.sleep(down_s)
            judge.start()
            down = time.monotonic() - down_started
            trainer.wait(timeout=900)
        finally:
            if trainer.poll() is None:
                trainer.kill()
                trainer.wait()
        report = _check_run(out, judge, steps, killed_at, down, config)
    report.wall_s = round(time.monotonic() - started, 1)
    return report


def _train_config(folder: Path, base: Path, steps: int, algo: str) -> Path:
    prompts = folder / "questions.txt"
    prompts.write_text("\n".join(QUESTIONS) + "\n", encoding="utf-8")
    raw = {
        "algo": algo,
        "model": {"path": str(base)},
        "lora": {"r": 4, "alpha": 8, "dropout": 0.0, "target_modules": ["q_proj"]},
        "generation": {"max_new_tokens": 8, "temperature": 1.0},
        "optim": {
            "lr": 1e-3,
            "steps": steps,
            "rollout_batch_size": 4,
            "micro_batch_size": 4,
            "torch_threads": 1,
        },
        "grpo": {"num_generations": 2},
        "rloo": {"num_generations": 2},
        "judge": {
            "max_downtime_s": 180.0,
            "retry_initial_s": 0.2,
            "retry_max_s": 2.0,
            "timeout_s": 30.0,
        },
        "prompts": {"train": str(prompts)},
        "logging": {"tensorboard": False},
        "checkpoints": {"every": 0},
    }
    path = folder / "train.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return path


def _start_trainer(
    config: Path, judge_url: str, out: Path, log: Path
) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "rlaif.cli", "train", "--config", str(config)]
    command += ["--judge-url", judge_url, "--out", str(out)]
    env = {"HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    with log.open("ab") as handle:
        return subprocess.Popen(
            command,
            cwd=REPO_ROOT,
            env={**os.environ, **env},
            stdout=handle,
            stderr=handle,
        )


def _wait_for_step(out: Path, step: int, trainer: subprocess.Popen[bytes]) -> int:
    """Block until ``metrics.jsonl`` shows ``step``; return the step seen."""
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        rows = _metrics(out)
        if rows and rows[-1].get("step", 0) >= step:
            return int(rows[-1]["step"])
        if trainer.poll() is not None:
            return int(rows[-1]["step"]) if rows else 0
        time.sleep(0.1)
    raise TimeoutError(f"training did not reach step {step} in 600 s")


def _metrics(out: Path) -> list[dict[str, Any]]:
    path = out / "metrics.jsonl"
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rows.append(json.loads(line))
        except ValueError:
            break  # a line being written
    return rows


def _check_run(
    out: Path,
    judge: ServiceProcess,
    steps: int,
    killed_at: int,
    down_s: float,
    config: Path,
) -> RestartReport:
    problems: list[str] = []
    summary_path = out / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
    rows = _metrics(out)
    finite = all(
        math.isfinite(v)
        for row in rows
        for v in row.values()
        if isinstance(v, (int, float))
    )
    if summary.get("status") != "completed" or summary.get("steps") != steps:
        problems.append(
            f"training ended {summary.get('status')!r} after {summary.get('steps')}"
            f" of {steps} steps: {summary.get('error')}"
        )
    if not finite:
        problems.append("a training metric is NaN or infinite")
    if killed_at >= steps:
        problems.append("the judge was killed only after the last step")
    samples_path = out / "samples.parquet"
    samples = pq.read_table(samples_path).to_pylist() if samples_path.is_file() else []
    checked, invalid = _check_rewards(samples, judge, config, problems)
    return RestartReport(
        status=str(summary.get("status")),
        steps=int(summary.get("steps") or 0),
        target_steps=steps,
        judge_down_s=round(down_s, 1),
        killed_after_step=killed_at,
        metrics_finite=finite,
        samples=len(samples),
        rewards_checked=checked,
        invalid_samples=invalid,
        wall_s=0.0,
        problems=problems,
    )


def _check_rewards(
    samples: list[dict[str, Any]],
    judge: ServiceProcess,
    config: Path,
    problems: list[str],
) -> tuple[int, int]:
    """Rescore each logged response; its score and reward must match."""
    from trainer.config import load_config

    train = load_config(str(config), [])
    penalty, eos_penalty = train.judge.invalid_penalty, train.missing_eos_penalty
    valid = [s for s in samples if s.get("valid") and s.get("response")]
    invalid = sum(not s.get("valid") for s in samples)
    for sample in samples:
        if not sample.get("valid") and sample["reward"] not in (
            penalty,
            penalty - eos_penalty,
            None,
        ):
            problems.append(f"invalid sample got reward {sample['reward']!r}")
    if not valid:
        problems.append("no sample has a valid judge score")
        return 0, invalid
    response = httpx.post(
        f"{judge.url}/v1/score",
        json={"texts": [s["response"] for s in valid]},
        timeout=60.0,
    )
    fresh = response.json()["results"]
    for sample, again in zip(valid, fresh, strict=True):
        score = sample["score"]
        expected = math.log(score / (1 - score))
        if again["score"] is None or abs(again["score"] - score) > 1e-4:
            problems.append(
                f"logged score {score!r} differs from the judge's {again['score']!r}"
            )
        if (
            min(
                abs(sample["reward"] - expected),
                abs(sample["reward"] - expected + eos_penalty),
            )
            > 1e-4
        ):
            problems.append(
                f"reward {sample['reward']!r} is not the logit of score {score!r}"
            )
    return len(valid), invalid
