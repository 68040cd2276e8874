"""What a run built on a Hugging Face `Trainer` (TRL's GRPO, RLOO, DPO) exposes.

`trainer.run` drives every algorithm through the same three members; the
runs built on `transformers.Trainer` share them here. PPO has its own run
class, since TRL's PPO trainer keeps its own loop and step counter.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


class TrainerRun:
    """Base for runs whose `self.trainer` is a `transformers.Trainer`."""

    trainer: Any

    @property
    def policy(self):
        return self.trainer.accelerator.unwrap_model(self.trainer.model)

    @property
    def global_step(self) -> int:
        return self.trainer.state.global_step

    def train(self, resume_from: Path | None = None) -> None:
        self.trainer.train(
            resume_from_checkpoint=str(resume_from) if resume_from else None
        )
