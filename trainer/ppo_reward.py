"""The seam between TRL's PPO and our HTTP judge: a reward-model adapter.

TRL's `PPOTrainer` has no reward-callable option. It scores each rollout
with `trl.experimental.utils.get_reward(reward_model, query_responses,
pad_token_id, context_length)`, which does exactly three things with the
model we pass:

1. `backbone = getattr(model, model.base_model_prefix)` and calls it with
   `input_ids` (pads replaced by 0), `attention_mask` (True where the token
   is not pad) and `position_ids`, asking for hidden states;
2. `model.score(output.hidden_states[-1])` gives per-position logits;
3. it picks, per row, the position of the last non-pad response token.

`JudgeRewardModel` fills those roles without copying any TRL code: its
backbone decodes each row's response, asks the judge, and returns the row's
reward broadcast over every position as a `(batch, length, 1)` "hidden
state"; `score` is the identity. Whatever position step 3 picks, it reads
the row's own reward.

Finding the response. The backbone is not told `context_length`, so it
cannot split prompt from response by position. It does not need to: the
training prompts are registered up front (their token ids, as rendered by
the chat template), and each row's non-pad tokens start with exactly one of
them. The longest registered prefix is the prompt; the rest, cut at EOS, is
the response. This holds for any padding layout (left-padded queries,
right-padded responses, chunks of rows with different prompt lengths), and
a row that matches no registered prompt is an error rather than a guess.
The match also gives back the question text for `samples.parquet`.
"""

from __future__ import annotations

from types import SimpleNamespace

import torch
from torch import nn

from trainer.errors import TrainerError
from trainer.prompts import RenderedPrompt
from trainer.rewards import JudgeRewards, decode_response


class PromptIndex:
    """Registered prompts, looked up by token-prefix of a sequence."""

    def __init__(self, prompts: list[RenderedPrompt]) -> None:
        self._by_ids = {p.input_ids: p for p in prompts}
        self._lengths = sorted({len(p.input_ids) for p in prompts}, reverse=True)

    def split(self, ids: list[int]) -> tuple[RenderedPrompt, list[int]]:
        """The prompt `ids` starts with, and the tokens after it."""
        for length in self._lengths:
            prompt = self._by_ids.get(tuple(ids[:length]))
            if prompt is not None:
                return prompt, ids[length:]
        raise TrainerError(
            "a PPO rollout starts with none of the registered training prompts "
            f"(first tokens {ids[:8]}); the reward model must be built from "
            "the same rendered prompts as the training dataset"
        )


class _JudgeBackbone(nn.Module):
    """Plays the reward model's transformer: rows in, per-row rewards out."""

    def __init__(self, tokenizer, prompts: PromptIndex, rewards: JudgeRewards):
        super().__init__()
        self.tokenizer = tokenizer
        self.prompts = prompts
        self.rewards = rewards

    def forward(self, input_ids, attention_mask, **_: object) -> SimpleNamespace:
        questions, texts, eos_flags, lengths = [], [], [], []
        for row, mask in zip(input_ids.tolist(), attention_mask.tolist(), strict=True):
            ids = [token for token, keep in zip(row, mask, strict=True) if keep]
            prompt, response_ids = self.prompts.split(ids)
            text, reached_eos = decode_response(self.tokenizer, response_ids)
            questions.append(prompt.question)
            texts.append(text)
            eos_flags.append(reached_eos)
            lengths.append(len(response_ids))
        values = self.rewards.rewards_sync(texts, questions, eos_flags, lengths)
        reward = torch.tensor(values, dtype=torch.float32, device=input_ids.device)
        hidden = reward.view(-1, 1, 1).expand(-1, input_ids.shape[1], 1)
        return SimpleNamespace(hidden_states=(hidden,))


class JudgeRewardModel(nn.Module):
    """A stand-in reward model for `PPOTrainer(reward_model=...)`."""

    base_model_prefix = "judge"

    def __init__(
        self, tokenizer, prompts: list[RenderedPrompt], rewards: JudgeRewards
    ) -> None:
        super().__init__()
        self.judge = _JudgeBackbone(tokenizer, PromptIndex(prompts), rewards)
        # Read by TRL's DeepSpeed preparation of the reward model; we have
        # no hidden size and no weights to shard.
        self.config = SimpleNamespace(hidden_size=None)

    def score(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return hidden_states
