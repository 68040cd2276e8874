"""Offline DPO: TRL's DPOTrainer with LoRA on judge-labelled pairs.

No judge is called while training: the preferences were fixed beforehand by
`rlaif dpo pairs` (or written by a stronger LLM) in a pairs file. The
reference policy is the base with its LoRA adapter disabled, as for PPO, so
no second copy of the weights is loaded. Each pair's question is rendered
with `prompts.system_prompt` and the tokenizer's chat template as a
conversation, exactly as the RL trainers and the chat service render it.

Config mapping (`trainer.config`): `dpo.beta`, `dpo.loss_type`,
`dpo.label_smoothing`, `dpo.max_length`, `dpo.precompute_ref_log_probs`;
`optim.lr`, `optim.steps`, `optim.micro_batch_size` (pairs per forward) and
`optim.rollout_batch_size` (pairs per optimiser step, through gradient
accumulation); `lora.*` for the adapter; `checkpoints.*`.

The run dir is shaped like the other algorithms': adapter, tokenizer and
generation config, `metrics.jsonl` (`loss/policy`, `rewards/margins`,
`rewards/accuracies`, ...), TensorBoard events and `summary.json`.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from trainer.checkpoints import checkpoints_root, latest_checkpoint
from trainer.config import TrainConfig, config_to_dict
from trainer.errors import ConfigError
from trainer.models import NON_REENTRANT, load_policy, load_tokenizer, lora_config
from trainer.monitor import RunMonitor, quiet_trl_progress
from trainer.pairs import PreferencePair, read_pairs
from trainer.prompts import chat_messages
from trainer.trl_run import TrainerRun

logger = logging.getLogger(__name__)

# Our metric name <- the name TRL's DPOTrainer (or the HF Trainer) logs.
DPO_METRICS = {
    "loss/policy": "loss",
    "rewards/chosen": "rewards/chosen",
    "rewards/rejected": "rewards/rejected",
    "rewards/margins": "rewards/margins",
    "rewards/accuracies": "rewards/accuracies",
    "logps/chosen": "logps/chosen",
    "logps/rejected": "logps/rejected",
    "grad_norm": "grad_norm",
    "lr": "learning_rate",
}


def pairs_dataset(pairs: list[PreferencePair], system_prompt: str):
    """TRL's conversational preference format: the template renders the turns."""
    from datasets import Dataset

    return Dataset.from_dict(
        {
            "prompt": [chat_messages(p.prompt, system_prompt) for p in pairs],
            "chosen": [[{"role": "assistant", "content": p.chosen}] for p in pairs],
            "rejected": [[{"role": "assistant", "content": p.rejected}] for p in pairs],
        }
    )


def dpo_args(config: TrainConfig, out_dir: Path) -> dict[str, Any]:
    """`DPOConfig` keyword arguments from our config (every knob is ours)."""
    c, d = config, config.dpo
    return dict(
        output_dir=str(checkpoints_root(out_dir)),
        learning_rate=c.optim.lr,
        lr_scheduler_type=c.optim.lr_scheduler,
        weight_decay=c.optim.weight_decay,
        max_grad_norm=c.optim.max_grad_norm,
        per_device_train_batch_size=c.optim.micro_batch_size,
        gradient_accumulation_steps=(
            c.optim.rollout_batch_size // c.optim.micro_batch_size
        ),
        max_steps=c.optim.steps,
        seed=c.optim.seed,
        beta=d.beta,
        loss_type=[d.loss_type, "sft"] if d.sft_weight else [d.loss_type],
        loss_weights=[1.0, d.sft_weight] if d.sft_weight else None,
        label_smoothing=d.label_smoothing,
        max_length=d.max_length,
        precompute_ref_log_probs=d.precompute_ref_log_probs,
        # DPOConfig defaults to bf16 and gradient checkpointing: say ours
        # (under transformers' new name; the old one is a deprecated alias).
        bf16=c.model.dtype == "bfloat16",
        fp16=c.model.dtype == "float16",
        activation_checkpointing=c.model.gradient_checkpointing,
        activation_checkpointing_kwargs=NON_REENTRANT,
        logging_steps=1,
        save_strategy="steps" if c.checkpoints.every else "no",
        save_steps=c.checkpoints.every or 500,
        save_total_limit=c.checkpoints.keep,
        report_to="none",
        disable_tqdm=True,
    )


class DPOMonitor(RunMonitor):
    """RunMonitor for DPO: TRL's preference metrics, no judge, no samples."""

    bar_fields = {"loss": ("loss/policy", 3), "margin": ("rewards/margins", 3)}

    def __init__(self, out_dir: Path, config: TrainConfig, **kwargs: Any) -> None:
        super().__init__(
            out_dir,
            rewards=None,
            total_steps=config.optim.steps,
            tensorboard=config.logging.tensorboard,
            prometheus_port=config.logging.prometheus_port,
            **kwargs,
        )

    def step_metrics(self, step: int, logs: dict[str, Any]) -> dict[str, float]:
        now = time.perf_counter()
        row: dict[str, float] = {"step": step, "time/step_s": now - self._last_time}
        for ours, theirs in DPO_METRICS.items():
            if isinstance(logs.get(theirs), int | float):
                row[ours] = float(logs[theirs])
        self._last_time = now
        self.history.append(row)
        return row

    def flush(self) -> None:
        """Nothing is sampled during DPO, so there is no samples.parquet."""


class DPORun(TrainerRun):
    """Builds TRL's DPOTrainer from the shared config and a list of pairs."""

    def __init__(
        self,
        config: TrainConfig,
        tokenizer,
        pairs: list[PreferencePair],
        out_dir: Path,
        *,
        callbacks: list[TrainerCallback],
    ) -> None:
        from trl import DPOConfig, DPOTrainer

        self.config = config
        self.out_dir = out_dir
        self.trainer = DPOTrainer(
            model=load_policy(config.model, tokenizer),
            ref_model=None,  # with LoRA: the base, adapter disabled
            args=DPOConfig(**dpo_args(config, out_dir)),
            train_dataset=pairs_dataset(pairs, config.prompts.system_prompt),
            processing_class=tokenizer,
            peft_config=lora_config(config.lora),
            callbacks=callbacks,
        )
        quiet_trl_progress(self.trainer)


def refuse_adapter_as_base(config: TrainConfig) -> None:
    """A LoRA dir as model.path would nest adapters and shift the reference."""
    if (Path(config.model.path) / "adapter_config.json").is_file():
        raise NotImplementedError(
            f"model.path={config.model.path!r} is a LoRA adapter, which is not "
            "supported with algo dpo: merge it first (`rlaif chat merge --base "
            "BASE --adapter DIR --out MERGED`) and train from MERGED"
        )


def load_training_pairs(config: TrainConfig) -> list[PreferencePair]:
    if not config.dpo.pairs:
        raise ConfigError(
            "dpo.pairs=None is invalid: build pairs with `rlaif dpo pairs ... --out "
            "FILE.parquet` and set dpo.pairs (or --set dpo.pairs=FILE.parquet)"
        )
    return read_pairs(config.dpo.pairs)


def train_dpo(
    config: TrainConfig,
    out_dir: Path,
    *,
    start_step: int = 0,
    checkpoint: Path | None = None,
    is_main: bool = True,
):
    """One DPO run into `out_dir`; `trainer.run.train` calls this for algo dpo."""
    from trainer.run import RunResult, save_artifacts

    refuse_adapter_as_base(config)
    pairs = load_training_pairs(config)
    tokenizer = load_tokenizer(config.model, config.tokenizer)
    monitor = DPOMonitor(out_dir, config, start_step=start_step, is_main=is_main)
    started = time.perf_counter()
    try:
        algo_run = DPORun(config, tokenizer, pairs, out_dir, callbacks=[monitor])
        algo_run.train(resume_from=checkpoint)
        if is_main:
            save_artifacts(algo_run.policy, tokenizer, out_dir)
    finally:
        monitor.close()
    steps = algo_run.global_step
    summary = dpo_summary(
        config, out_dir, monitor.history, pairs, steps, time.perf_counter() - started
    )
    if is_main:
        (out_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return RunResult("completed", steps, out_dir, summary, None, is_main)


def dpo_summary(
    config: TrainConfig,
    out_dir: Path,
    history: list[dict[str, float]],
    pairs: list[PreferencePair],
    steps: int,
    wall_s: float,
) -> dict[str, Any]:
    """summary.json: the shared keys (algo, status, steps, ...) and DPO's own."""
    first, last = (history[0], history[-1]) if history else ({}, {})
    latest = latest_checkpoint(out_dir)
    scored = [p for p in pairs if p.chosen_score is not None]
    gap = (
        sum(p.chosen_score - p.rejected_score for p in scored) / len(scored)
        if scored
        else None
    )
    return {
        "algo": "dpo",
        "status": "completed",
        "error": None,
        "steps": steps,
        "target_steps": config.optim.steps,
        "latest_checkpoint": str(latest[1]) if latest else None,
        "pairs": len(pairs),
        "pairs_file": config.dpo.pairs,
        "pairs_score_gap_mean": gap,
        "loss_first": first.get("loss/policy"),
        "loss_last": last.get("loss/policy"),
        "margin_first": first.get("rewards/margins"),
        "margin_last": last.get("rewards/margins"),
        "accuracy_first": first.get("rewards/accuracies"),
        "accuracy_last": last.get("rewards/accuracies"),
        # No judge during DPO: the RL summaries' reward and KL keys are empty.
        "reward_mean_first": None,
        "reward_mean_last": None,
        "kl_last": None,
        "wall_s": round(wall_s, 2),
        "config": config_to_dict(config),
    }
