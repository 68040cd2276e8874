"""Per-step metrics: metrics.jsonl, TensorBoard, Prometheus, samples, progress.

`RunMonitor` is a `TrainerCallback`. On every trainer log it joins TRL's
numbers with what `JudgeRewards` recorded for that step, under one set of
slash-namespaced names shared by all algorithms (`reward/mean`,
`objective/kl`, ...), and writes them everywhere at once. Only the main
process writes.

`samples.parquet` is rewritten under a temporary name and renamed, so a
reader never sees a half-written file.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import time
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from trainer.rewards import JudgeRewards, summarise

logger = logging.getLogger(__name__)

# Our name <- the names TRL's trainers log it under (PPO first, then GRPO/RLOO).
TRL_ALIASES = {
    "objective/kl": ("objective/kl", "kl"),
    "objective/entropy": ("objective/entropy", "entropy"),
    "loss/policy": ("loss/policy_avg", "loss"),
    "loss/value": ("loss/value_avg",),
    "policy/clipfrac": ("policy/clipfrac_avg", "clip_ratio/region_mean"),
    "lr": ("lr", "learning_rate"),
}


def quiet_trl_progress(trainer) -> None:
    """RunMonitor draws the progress bar; TRL's own bar or printer would repeat it."""
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    for callback in (PrinterCallback, ProgressCallback):
        trainer.remove_callback(callback)


class GenerationTimer:
    """Wraps a model's `generate` to add up the seconds spent sampling."""

    def __init__(self, model) -> None:
        self.seconds = 0.0
        original = model.generate

        def timed_generate(*args, **kwargs):
            started = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - started

        model.generate = timed_generate

    def drain(self) -> float:
        seconds, self.seconds = self.seconds, 0.0
        return seconds


class SamplesWriter:
    """Rows of (step, prompt, response, score, reward), flushed atomically."""

    def __init__(self, path: Path, keep_until_step: int | None = None) -> None:
        self.path = path
        self.rows: list[dict[str, Any]] = []
        if keep_until_step is not None and path.is_file():
            import pyarrow.parquet as pq

            old = pq.read_table(path).to_pylist()
            self.rows = [row for row in old if row["step"] <= keep_until_step]

    def add(self, step: int, samples: list[dict[str, Any]]) -> None:
        self.rows.extend({"step": step, **sample} for sample in samples)

    def flush(self) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        schema = pa.schema(
            [
                ("step", pa.int64()),
                ("prompt", pa.string()),
                ("response", pa.string()),
                ("score", pa.float64()),
                ("reward", pa.float64()),
                ("valid", pa.bool_()),
            ]
        )
        table = pa.Table.from_pylist(self.rows, schema=schema)
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        pq.write_table(table, tmp)
        os.replace(tmp, self.path)


class PrometheusExporter:
    """Gauges `rlaif_trainer_<metric>` served on a port while training runs."""

    def __init__(self, port: int) -> None:
        from prometheus_client import CollectorRegistry, start_http_server

        self.registry = CollectorRegistry()
        self._gauges: dict[str, Any] = {}
        self.server, self._thread = start_http_server(port, registry=self.registry)
        self.port = self.server.server_port
        logger.info("training metrics on http://127.0.0.1:%d/metrics", self.port)

    def update(self, metrics: dict[str, float]) -> None:
        from prometheus_client import Gauge

        for key, value in metrics.items():
            name = "rlaif_trainer_" + re.sub(r"[^a-zA-Z0-9_]", "_", key)
            if name not in self._gauges:
                self._gauges[name] = Gauge(
                    name, f"trainer {key}", registry=self.registry
                )
            self._gauges[name].set(value)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class RunMonitor(TrainerCallback):
    """Collects each step's metrics and samples and writes them out."""

    # The progress bar's postfix: label -> (metric name, decimals).
    bar_fields = {"reward": ("reward/mean", 3), "kl": ("objective/kl", 4)}

    def __init__(
        self,
        out_dir: Path,
        rewards: JudgeRewards,
        *,
        total_steps: int,
        start_step: int = 0,
        generation_timer: GenerationTimer | None = None,
        tensorboard: bool = True,
        prometheus_port: int | None = None,
        samples_every: int = 1,
        is_main: bool = True,
    ) -> None:
        self.out_dir = out_dir
        self.rewards = rewards
        self.total_steps = total_steps
        self.start_step = start_step
        self.generation_timer = generation_timer
        self.samples_every = max(samples_every, 1)
        self.is_main = is_main
        self.history: list[dict[str, float]] = []
        self._metrics_path = out_dir / "metrics.jsonl"
        self._last_time = time.perf_counter()
        self._writer = None
        self._prometheus = None
        self._bar = None
        if not is_main:
            return
        self._keep_rows_until(start_step)
        self.samples = SamplesWriter(out_dir / "samples.parquet", start_step)
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(str(out_dir / "tensorboard"))
        if prometheus_port is not None:
            self._prometheus = PrometheusExporter(prometheus_port)

    # -- TrainerCallback hooks ----------------------------------------------

    def on_train_begin(self, args, state, control, **kwargs):
        if self.is_main and self._bar is None:
            from tqdm.auto import tqdm

            self._bar = tqdm(
                total=self.total_steps,
                initial=self.start_step,
                desc="train",
                unit="step",
            )
        self._last_time = time.perf_counter()

    def on_log(self, args, state, control, logs=None, **kwargs):
        logs = logs or {}
        if "train_runtime" in logs:  # the end-of-training summary, not a step
            return
        row = self.step_metrics(state.global_step, logs)
        if self.is_main:
            self._write(row)

    # -- the work -----------------------------------------------------------

    def step_metrics(self, step: int, logs: dict[str, Any]) -> dict[str, float]:
        """One step's metrics under our names, finite numbers only."""
        now = time.perf_counter()
        record = self.rewards.drain_step()
        reward_mean, reward_std = summarise(record.rewards)
        score_mean, _ = summarise(record.scores)
        length_mean, _ = summarise(record.lengths)
        row: dict[str, float] = {
            "step": step,
            "reward/mean": reward_mean,
            "reward/std": reward_std,
            "judge/score_mean": score_mean,
            "judge/latency_s": record.judge_seconds,
            "judge/invalid_rate": self.rewards.invalid_rate,
            "judge/invalid_step": record.invalid / record.judged
            if record.judged
            else 0,
            "response/length_mean": length_mean,
            "response/missing_eos_rate": (
                record.missing_eos / record.judged if record.judged else 0.0
            ),
            "time/step_s": now - self._last_time,
        }
        if self.generation_timer is not None:
            row["time/generation_s"] = self.generation_timer.drain()
        for ours, names in TRL_ALIASES.items():
            for name in names:
                if isinstance(logs.get(name), int | float):
                    row[ours] = float(logs[name])
                    break
        self._last_time = now
        if self.is_main and (step - 1) % self.samples_every == 0:
            self.samples.add(step, record.samples)
        self.history.append(row)
        return row

    def _write(self, row: dict[str, float]) -> None:
        bad = [k for k, v in row.items() if not math.isfinite(v)]
        if bad:
            logger.warning("step %d has non-finite metrics: %s", row["step"], bad)
        with self._metrics_path.open("a") as stream:
            stream.write(json.dumps(row) + "\n")
        step = int(row["step"])
        if self._writer is not None:
            for key, value in row.items():
                if key != "step":
                    self._writer.add_scalar(key, value, step)
            self._writer.flush()
        if self._prometheus is not None:
            self._prometheus.update(row)
        if self._bar is not None:
            self._bar.update(max(step - self._bar.n, 0))
            self._bar.set_postfix(
                {
                    label: f"{row.get(name, 0.0):.{digits}f}"
                    for label, (name, digits) in self.bar_fields.items()
                }
            )

    def flush(self) -> None:
        """Write samples; called at checkpoints and at the end."""
        if self.is_main:
            self.samples.flush()

    def close(self) -> None:
        if not self.is_main:
            return
        self.flush()
        if self._bar is not None:
            self._bar.close()
        if self._writer is not None:
            self._writer.close()
        if self._prometheus is not None:
            self._prometheus.close()

    def _keep_rows_until(self, step: int) -> None:
        """On resume, forget rows of steps the checkpoint does not contain."""
        if not self._metrics_path.is_file():
            return
        rows = [
            json.loads(line) for line in self._metrics_path.read_text().splitlines()
        ]
        kept = [row for row in rows if row["step"] <= step]
        self.history = kept
        self._metrics_path.write_text("".join(json.dumps(r) + "\n" for r in kept))
