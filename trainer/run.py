"""One training run, any algorithm: from config to the output dir.

Steps: load tokenizer and prompts, connect the judge, build the algorithm's
trainer, resume from the newest checkpoint if asked, train, and write the
artifacts (adapter, tokenizer, generation config, metrics, samples,
summary). DPO is offline: `trainer.dpo` reads its pairs file instead and
never calls the judge.

A judge outage or an invalid-score rate over the limit ends the run the same
way: a checkpoint of the last completed step, `summary.json` with the
reason, and the error re-raised for the CLI to report. No step ever trains
on rewards the judge did not give.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainer.checkpoints import latest_checkpoint
from trainer.config import TrainConfig, config_to_dict
from trainer.errors import (
    ConfigError,
    InvalidRateExceededError,
    JudgeError,
    JudgeUnavailableError,
)
from trainer.judge_client import JudgeClient
from trainer.models import configure_generation, load_tokenizer
from trainer.monitor import GenerationTimer, RunMonitor
from trainer.prompts import load_questions, render_prompts
from trainer.rewards import JudgeRewards

logger = logging.getLogger(__name__)


@dataclass
class RunResult:
    status: str  # completed | judge_unavailable | invalid_rate | judge_error
    steps: int
    out_dir: Path
    summary: dict[str, Any] = field(default_factory=dict)
    error: Exception | None = None
    is_main: bool = True


def make_judge_client(config: TrainConfig) -> JudgeClient:
    j = config.judge
    api_key = os.environ.get(j.api_key_env) if j.api_key_env else None
    return JudgeClient(
        j.urls,
        j.rubric,
        timeout_s=j.timeout_s,
        max_concurrency=j.max_concurrency,
        max_batch=j.max_batch,
        max_downtime_s=j.max_downtime_s,
        retry_initial_s=j.retry_initial_s,
        retry_max_s=j.retry_max_s,
        api_key=api_key,
    )


def make_rewards(config: TrainConfig, client: JudgeClient) -> JudgeRewards:
    j = config.judge
    return JudgeRewards(
        client,
        invalid_policy=j.invalid_policy,
        invalid_penalty=j.invalid_penalty,
        max_invalid_rate=j.max_invalid_rate,
        invalid_rate_min_samples=j.invalid_rate_min_samples,
        missing_eos_penalty=config.missing_eos_penalty,
        samples_per_step=config.logging.samples_per_step,
    )


def train(
    config: TrainConfig,
    out_dir: str | Path,
    *,
    resume: bool = False,
    client: JudgeClient | None = None,
) -> RunResult:
    """Run training as configured; see the module docstring for failures."""
    from transformers import set_seed

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    start_step, checkpoint = _resume_point(out_dir, resume)
    set_seed(config.optim.seed + start_step)
    if config.optim.torch_threads:
        import torch

        torch.set_num_threads(config.optim.torch_threads)
    is_main = distributed_state().is_main_process
    if config.algo == "dpo":  # offline: pairs file in, no judge client
        from trainer.dpo import train_dpo

        return train_dpo(
            config,
            out_dir,
            start_step=start_step,
            checkpoint=checkpoint,
            is_main=is_main,
        )

    tokenizer = load_tokenizer(config.model, config.tokenizer)
    p = config.prompts
    questions = load_questions(p.train, p.limit)
    prompts = render_prompts(tokenizer, questions, p.system_prompt, p.max_prompt_tokens)
    client = client or make_judge_client(config)
    rewards = make_rewards(config, client)
    monitor = _make_monitor(config, out_dir, rewards, start_step, is_main)
    started = time.perf_counter()
    status, error = "completed", None
    try:
        algo_run = _build(
            config, tokenizer, prompts, rewards, out_dir, start_step, monitor
        )
        monitor.generation_timer = GenerationTimer(algo_run.policy)
        status, error = _train_until_done_or_stopped(algo_run, checkpoint)
        if status == "completed" and is_main:
            save_artifacts(algo_run.policy, tokenizer, out_dir)
    finally:
        monitor.close()
        client.close()

    steps = algo_run.global_step
    summary = write_summary(
        config, out_dir, monitor, status, steps, time.perf_counter() - started, error
    )
    return RunResult(status, steps, out_dir, summary, error, is_main)


def _make_monitor(config, out_dir, rewards, start_step, is_main) -> RunMonitor:
    return RunMonitor(
        out_dir,
        rewards,
        total_steps=config.optim.steps,
        start_step=start_step,
        tensorboard=config.logging.tensorboard,
        prometheus_port=config.logging.prometheus_port if is_main else None,
        samples_every=config.logging.samples_every,
        is_main=is_main,
    )


def distributed_state():
    """accelerate's process state, set up so CPU ranks really join up.

    Under `accelerate launch` (torchrun) on a machine without an accelerator,
    a state made without `cpu=True` silently runs every rank alone, and
    `TrainingArguments` rebuilds the state from `ACCELERATE_USE_CPU`; setting
    that flag before TRL builds its configs gives one gloo group everywhere.
    """
    import torch
    from accelerate import PartialState

    if not torch.cuda.is_available():
        os.environ.setdefault("ACCELERATE_USE_CPU", "true")
    return PartialState(cpu=not torch.cuda.is_available())


def _build(config, tokenizer, prompts, rewards, out_dir, start_step, monitor):
    kwargs = dict(
        start_step=start_step, callbacks=[monitor], on_checkpoint=monitor.flush
    )
    if config.algo == "ppo":
        from trainer.ppo import PPORun

        return PPORun(config, tokenizer, prompts, rewards, out_dir, **kwargs)
    from trainer.group import GroupRun

    return GroupRun(config, tokenizer, prompts, rewards, out_dir, **kwargs)


def _train_until_done_or_stopped(algo_run, checkpoint: Path | None):
    """Train; on a judge failure, checkpoint the last completed step and stop."""
    try:
        algo_run.train(resume_from=checkpoint)
        return "completed", None
    except (JudgeError, InvalidRateExceededError) as exc:
        status = _status_of(exc)
        logger.error("stopping at step %d: %s", algo_run.global_step, exc)
        path = algo_run.save_checkpoint()
        logger.error("checkpoint of the last completed step: %s", path)
        return status, exc


def _status_of(exc: Exception) -> str:
    if isinstance(exc, JudgeUnavailableError):
        return "judge_unavailable"
    if isinstance(exc, InvalidRateExceededError):
        return "invalid_rate"
    return "judge_error"


def _resume_point(out_dir: Path, resume: bool) -> tuple[int, Path | None]:
    found = latest_checkpoint(out_dir)
    if not resume:
        if found is not None:
            raise ConfigError(
                f"--out {str(out_dir)!r} already holds {found[1].name}: pass "
                "--resume to continue it or choose a fresh --out"
            )
        (out_dir / "metrics.jsonl").unlink(missing_ok=True)
        return 0, None
    if found is None:
        logger.warning("--resume: no checkpoint in %s, starting at step 0", out_dir)
        return 0, None
    logger.info("resuming from %s", found[1])
    return found


def save_artifacts(policy, tokenizer, out_dir: Path) -> None:
    """Adapter + tokenizer + generation config: loadable by peft and vLLM."""
    policy.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    base = policy.get_base_model()
    configure_generation(base, tokenizer)
    base.generation_config.save_pretrained(out_dir)


def write_summary(
    config: TrainConfig,
    out_dir: Path,
    monitor: RunMonitor,
    status: str,
    steps: int,
    wall_s: float,
    error: Exception | None,
) -> dict[str, Any]:
    history = monitor.history
    latest = latest_checkpoint(out_dir)
    first, last = (history[0], history[-1]) if history else ({}, {})
    summary = {
        "algo": config.algo,
        "status": status,
        "error": str(error) if error else None,
        "steps": steps,
        "target_steps": config.optim.steps,
        "latest_checkpoint": str(latest[1]) if latest else None,
        "reward_mean_first": first.get("reward/mean"),
        "reward_mean_last": last.get("reward/mean"),
        "score_mean_first": first.get("judge/score_mean"),
        "score_mean_last": last.get("judge/score_mean"),
        "kl_last": last.get("objective/kl"),
        "invalid_rate": monitor.rewards.invalid_rate,
        "response_length_last": last.get("response/length_mean"),
        "wall_s": round(wall_s, 2),
        "config": config_to_dict(config),
    }
    if monitor.is_main:
        (out_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary
