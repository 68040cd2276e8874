"""PPO with LoRA: TRL's `PPOTrainer`, the judge behind `JudgeRewardModel`.

The reference model is the policy with its adapter disabled (`ref_model=None`
plus `peft_config`), so the base weights exist once. The critic is the base
weights with a scalar head (fully trained, or LoRA + head with
`ppo.value_lora`).

TRL's `PPOTrainer.train()` always starts at step 0 and has no resume, so
checkpoints are ours: `checkpoint-N/` holds the policy adapter, the critic's
trainable weights, the optimiser state and the step; resuming builds the
trainer for the remaining steps, loads them back, and a callback restores
the step counter before the first update.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from pathlib import Path

import torch
from transformers import TrainerCallback

from trainer.checkpoints import checkpoint_dir, rotate_checkpoints
from trainer.config import TrainConfig
from trainer.models import load_policy, load_value_model, lora_config
from trainer.monitor import quiet_trl_progress
from trainer.ppo_reward import JudgeRewardModel
from trainer.prompts import RenderedPrompt
from trainer.rewards import JudgeRewards

logger = logging.getLogger(__name__)

# DESIGN.md pins TRL 1.12 for its (experimental) PPO on purpose.
os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")


class _StartAtStep(TrainerCallback):
    """Puts a resumed run's step and episode counters back before step 1."""

    def __init__(self, step: int, batch_size: int) -> None:
        self.step = step
        self.batch_size = batch_size

    def on_train_begin(self, args, state, control, **kwargs):
        state.global_step = self.step
        state.episode = self.step * self.batch_size


class _EveryNSteps(TrainerCallback):
    def __init__(self, every: int, action) -> None:
        self.every = every
        self.action = action

    def on_step_end(self, args, state, control, **kwargs):
        if self.every and state.global_step % self.every == 0:
            self.action()


class PPORun:
    """Builds the PPO trainer for a config and owns its checkpoints."""

    def __init__(
        self,
        config: TrainConfig,
        tokenizer,
        prompts: list[RenderedPrompt],
        rewards: JudgeRewards,
        out_dir: Path,
        *,
        start_step: int,
        callbacks: list[TrainerCallback],
        on_checkpoint=None,
    ) -> None:
        from datasets import Dataset
        from trl.experimental.ppo import PPOConfig, PPOTrainer

        from trainer.run import distributed_state

        self.config = config
        self.out_dir = out_dir
        self.start_step = start_step
        self.on_checkpoint = on_checkpoint
        world = distributed_state().num_processes
        self.batch_size = config.optim.rollout_batch_size * world
        remaining = max(config.optim.steps - start_step, 0)

        ids = [list(p.input_ids) for p in prompts]
        dataset = Dataset.from_dict({"input_ids": ids})
        args = PPOConfig(**self._trl_args(remaining))
        self.trainer = PPOTrainer(
            args=args,
            processing_class=tokenizer,
            model=load_policy(config.model, tokenizer),
            ref_model=None,
            reward_model=JudgeRewardModel(tokenizer, prompts, rewards),
            train_dataset=dataset,
            value_model=self._value_model(tokenizer),
            eval_dataset=dataset.select(range(min(len(dataset), 4))),
            peft_config=lora_config(config.lora),
            callbacks=[
                _StartAtStep(start_step, self.batch_size),
                *callbacks,
                _EveryNSteps(config.checkpoints.every, self.save_checkpoint),
            ],
        )
        quiet_trl_progress(self.trainer)
        _expose_policy_on_ddp_wrapper(self.trainer)
        self.remaining = remaining

    @property
    def policy(self):
        """The PeftModel being tuned."""
        return self.trainer.policy_model

    @property
    def global_step(self) -> int:
        return self.trainer.state.global_step

    def train(self, resume_from: Path | None = None) -> None:
        if resume_from is not None:
            self.load_checkpoint(resume_from)
        if self.remaining == 0:
            logger.info("already at optim.steps=%d: nothing to train", self.start_step)
            return
        self.trainer.train()

    # -- checkpoints ---------------------------------------------------------

    def save_checkpoint(self) -> Path | None:
        """Adapter, critic, optimiser and step at the current step."""
        accelerator = self.trainer.accelerator
        accelerator.wait_for_everyone()
        step = self.trainer.state.global_step
        path = checkpoint_dir(self.out_dir, step)
        if accelerator.is_main_process:
            path.mkdir(parents=True, exist_ok=True)
            self.policy.save_pretrained(path / "adapter")
            torch.save(_trainable_state(self.trainer.value_model), path / "value.pt")
            if not self.trainer.is_deepspeed_enabled:
                torch.save(self.trainer.optimizer.state_dict(), path / "optimizer.pt")
            state = {
                "global_step": step,
                "algo": "ppo",
                "episode": step * self.batch_size,
            }
            (path / "trainer_state.json").write_text(json.dumps(state))
            rotate_checkpoints(self.out_dir, self.config.checkpoints.keep)
            if self.on_checkpoint is not None:
                self.on_checkpoint()
            logger.info("checkpoint saved: %s", path)
        accelerator.wait_for_everyone()
        return path

    def load_checkpoint(self, path: Path) -> None:
        from peft import set_peft_model_state_dict
        from safetensors.torch import load_file

        adapter = load_file(str(path / "adapter" / "adapter_model.safetensors"))
        set_peft_model_state_dict(self.policy, adapter)
        value_state = torch.load(path / "value.pt", weights_only=True)
        missing = set(value_state) - set(
            dict(self.trainer.value_model.named_parameters())
        )
        if missing:
            raise ValueError(f"checkpoint {path} has unknown critic weights {missing}")
        self.trainer.value_model.load_state_dict(value_state, strict=False)
        optimizer = path / "optimizer.pt"
        if optimizer.is_file():
            self.trainer.optimizer.load_state_dict(
                torch.load(optimizer, weights_only=True)
            )
        else:
            logger.warning("%s has no optimizer state: moments start from zero", path)

    # -- construction ----------------------------------------------------------

    def _value_model(self, tokenizer):
        lora = self.config.lora if self.config.ppo.value_lora else None
        model = self.config.model
        if self.config.ppo.value_model:
            model = dataclasses.replace(model, path=self.config.ppo.value_model)
        return load_value_model(model, tokenizer, lora)

    def _trl_args(self, remaining_steps: int) -> dict:
        c = self.config
        args = dict(
            output_dir=str(self.out_dir / "trl"),
            learning_rate=c.optim.lr,
            lr_scheduler_type=c.optim.lr_scheduler,
            weight_decay=c.optim.weight_decay,
            max_grad_norm=c.optim.max_grad_norm,
            per_device_train_batch_size=c.optim.micro_batch_size,
            gradient_accumulation_steps=(
                c.optim.rollout_batch_size // c.optim.micro_batch_size
            ),
            local_rollout_forward_batch_size=c.optim.rollout_batch_size,
            # At least one batch, so a fully resumed run builds cleanly.
            total_episodes=max(remaining_steps, 1) * self.batch_size,
            num_ppo_epochs=c.ppo.num_ppo_epochs,
            num_mini_batches=c.ppo.num_mini_batches,
            response_length=c.generation.max_new_tokens,
            temperature=c.generation.temperature,
            stop_token="eos",
            # Our JudgeRewards applies it, so samples.parquet shows the
            # reward PPO actually trained on.
            missing_eos_penalty=None,
            kl_coef=c.kl.kl_coef,
            kl_estimator=c.kl.estimator,
            cliprange=c.ppo.cliprange,
            cliprange_value=c.ppo.cliprange_value,
            vf_coef=c.ppo.vf_coef,
            gamma=c.ppo.gamma,
            lam=c.ppo.lam,
            whiten_rewards=c.ppo.whiten_rewards,
            num_sample_generations=0,
            seed=c.optim.seed,
            bf16=c.model.dtype == "bfloat16",
            fp16=c.model.dtype == "float16",
            logging_steps=1,
            save_strategy="no",
            report_to="none",
            disable_tqdm=True,
        )
        if c.model.gradient_checkpointing:  # passed only when on: it is deprecated
            args["gradient_checkpointing"] = True
        return args


def _expose_policy_on_ddp_wrapper(trainer) -> None:
    """Let TRL's reference pass find `model.policy` under multi-process DDP.

    TRL 1.12's PPO reads `self.model.policy` for the adapter-disabled
    reference forward; after `accelerator.prepare` the model is a
    `DistributedDataParallel` that has no such attribute (DeepSpeed's engine
    forwards it, DDP does not). Storing the unwrapped policy in the wrapper's
    instance dict (not as a submodule, so DDP's parameters are unchanged)
    makes that lookup work; the reference pass runs under no_grad, so it
    needs no gradient sync.
    """
    from torch.nn.parallel import DistributedDataParallel

    if isinstance(trainer.model, DistributedDataParallel):
        object.__setattr__(trainer.model, "policy", trainer.model.module.policy)


def _trainable_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach().cpu() for n, p in model.named_parameters() if p.requires_grad}
