"""GRPO and RLOO: TRL's trainers with an async reward function on the judge.

Both sample `num_generations` completions per prompt and use the group as
the baseline, so there is no critic. The reward function is `async`: TRL
runs it on its own event loop thread, concurrently with any other reward
function. It decodes `completion_ids` itself (cut at EOS, no pad or special
tokens), so the judge sees the same text as under PPO. A `None` reward
(the 'drop' invalid policy) leaves that completion out of the group
baseline.

Checkpoints and `--resume` are the Hugging Face Trainer's own
(`checkpoint-N/` under `<out>/checkpoints`).
"""

from __future__ import annotations

import logging
from pathlib import Path

from transformers import TrainerCallback

from trainer.checkpoints import checkpoints_root
from trainer.config import TrainConfig
from trainer.models import load_policy, lora_config
from trainer.monitor import quiet_trl_progress
from trainer.prompts import RenderedPrompt, chat_messages
from trainer.rewards import JudgeRewards, decode_response
from trainer.trl_run import TrainerRun

logger = logging.getLogger(__name__)


def judge_reward_function(tokenizer, rewards: JudgeRewards):
    """The `reward_funcs` entry: completions in, judge rewards out."""

    async def judge(prompts, completions, completion_ids, question, **_):
        texts, eos_flags, lengths = [], [], []
        for ids in completion_ids:
            text, reached_eos = decode_response(tokenizer, ids)
            texts.append(text)
            eos_flags.append(reached_eos)
            lengths.append(len(ids))
        return await rewards.rewards(texts, question, eos_flags, lengths)

    return judge


class _FlushOnSave(TrainerCallback):
    def __init__(self, action) -> None:
        self.action = action

    def on_save(self, args, state, control, **kwargs):
        self.action()


class GroupRun(TrainerRun):
    """Builds a GRPO or RLOO trainer from the shared config."""

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

        self.config = config
        self.out_dir = out_dir
        self.start_step = start_step
        system = config.prompts.system_prompt
        dataset = Dataset.from_dict(
            {
                "prompt": [chat_messages(p.question, system) for p in prompts],
                "question": [p.question for p in prompts],
            }
        )
        trainer_cls, args_cls = _trl_classes(config.algo)
        if on_checkpoint is not None:
            callbacks = [*callbacks, _FlushOnSave(on_checkpoint)]
        self.trainer = trainer_cls(
            model=load_policy(config.model, tokenizer),
            reward_funcs=[judge_reward_function(tokenizer, rewards)],
            args=args_cls(**self._trl_args()),
            train_dataset=dataset,
            processing_class=tokenizer,
            peft_config=lora_config(config.lora),
            callbacks=callbacks,
        )
        quiet_trl_progress(self.trainer)

    def save_checkpoint(self) -> Path:
        """A checkpoint now, e.g. before stopping on a judge outage."""
        self.trainer._save_checkpoint(self.trainer.model, trial=None)
        return checkpoints_root(self.out_dir) / f"checkpoint-{self.global_step}"

    def _trl_args(self) -> dict:
        c, group = self.config, self.config.group
        args = dict(
            output_dir=str(checkpoints_root(self.out_dir)),
            learning_rate=c.optim.lr,
            lr_scheduler_type=c.optim.lr_scheduler,
            weight_decay=c.optim.weight_decay,
            max_grad_norm=c.optim.max_grad_norm,
            per_device_train_batch_size=c.optim.micro_batch_size,
            gradient_accumulation_steps=(
                c.optim.rollout_batch_size // c.optim.micro_batch_size
            ),
            num_generations=group.num_generations,
            max_completion_length=c.generation.max_new_tokens,
            temperature=c.generation.temperature,
            top_p=c.generation.top_p,
            beta=c.kl.kl_coef,
            epsilon=group.epsilon,
            max_steps=c.optim.steps,
            seed=c.optim.seed,
            bf16=c.model.dtype == "bfloat16",
            fp16=c.model.dtype == "float16",
            logging_steps=1,
            save_strategy="steps" if c.checkpoints.every else "no",
            save_steps=c.checkpoints.every or 500,
            save_total_limit=c.checkpoints.keep,
            report_to="none",
            disable_tqdm=True,
            log_completions=False,
        )
        if c.algo == "grpo":
            args.update(scale_rewards=group.scale_rewards, loss_type=group.loss_type)
        if c.model.gradient_checkpointing:  # passed only when on: it is deprecated
            args["gradient_checkpointing"] = True
        return args


def _trl_classes(algo: str):
    if algo == "grpo":
        from trl import GRPOConfig, GRPOTrainer

        return GRPOTrainer, GRPOConfig
    from trl import RLOOConfig, RLOOTrainer

    return RLOOTrainer, RLOOConfig
