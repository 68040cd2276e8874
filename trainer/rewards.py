"""From judge results to training rewards, the same way for every algorithm.

`JudgeRewards` owns the policy decisions that must not differ between PPO,
GRPO and RLOO:

- the judge sees only the response text (`decode_response` cuts at the stop
  token and drops pads and special tokens);
- a response that never reached EOS loses `missing_eos_penalty`;
- a score that stays invalid after the client's one retry is dropped
  (`None`, GRPO/RLOO leave it out) or replaced by `invalid_penalty`, is
  counted in `judge/invalid_rate`, and the run stops with
  `InvalidRateExceededError` once the run's rate passes `max_invalid_rate`;
- each step's scores, rewards, latencies and a few samples are kept for the
  metrics callback to drain.
"""

from __future__ import annotations

import logging
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from trainer.errors import InvalidRateExceededError
from trainer.judge_client import JudgeClient, JudgeResult

logger = logging.getLogger(__name__)


def decode_response(tokenizer, token_ids: Sequence[int]) -> tuple[str, bool]:
    """The text the judge should see, and whether EOS was reached.

    Cuts at the first EOS, drops pad tokens wherever they are, and decodes
    with `skip_special_tokens` so no role or pad marker leaks to the judge.
    """
    ids = list(token_ids)
    eos = tokenizer.eos_token_id
    reached_eos = eos in ids
    if reached_eos:
        ids = ids[: ids.index(eos)]
    ids = [i for i in ids if i != tokenizer.pad_token_id]
    return tokenizer.decode(ids, skip_special_tokens=True), reached_eos


@dataclass
class StepRecord:
    """What one step's rollouts got from the judge."""

    scores: list[float] = field(default_factory=list)
    rewards: list[float] = field(default_factory=list)
    lengths: list[int] = field(default_factory=list)
    judged: int = 0
    invalid: int = 0
    missing_eos: int = 0
    judge_seconds: float = 0.0
    samples: list[dict] = field(default_factory=list)


class JudgeRewards:
    """Turns responses into rewards via the judge, with the run's policies."""

    def __init__(
        self,
        client: JudgeClient,
        *,
        invalid_policy: str,
        invalid_penalty: float,
        max_invalid_rate: float,
        invalid_rate_min_samples: int,
        missing_eos_penalty: float,
        samples_per_step: int = 8,
    ) -> None:
        self.client = client
        self.invalid_policy = invalid_policy
        self.invalid_penalty = invalid_penalty
        self.max_invalid_rate = max_invalid_rate
        self.invalid_rate_min_samples = invalid_rate_min_samples
        self.missing_eos_penalty = missing_eos_penalty
        self.samples_per_step = samples_per_step
        self.total_judged = 0
        self.total_invalid = 0
        self.step = StepRecord()

    @property
    def invalid_rate(self) -> float:
        return self.total_invalid / self.total_judged if self.total_judged else 0.0

    async def rewards(
        self,
        responses: Sequence[str],
        prompts: Sequence[str],
        reached_eos: Sequence[bool],
        lengths: Sequence[int],
    ) -> list[float | None]:
        """One reward per response; None only under the 'drop' policy."""
        started = time.perf_counter()
        results = await self.client.score(list(responses))
        self.step.judge_seconds += time.perf_counter() - started
        rewards = [
            self._reward(result, eos)
            for result, eos in zip(results, reached_eos, strict=True)
        ]
        self._record(responses, prompts, results, rewards, reached_eos, lengths)
        self._enforce_invalid_rate()
        return rewards

    def rewards_sync(self, *args, **kwargs) -> list[float | None]:
        """`rewards` for synchronous callers (the PPO forward pass)."""
        return self.client.run_sync(self.rewards(*args, **kwargs))

    def drain_step(self) -> StepRecord:
        """Hand over this step's record and start a new one."""
        record, self.step = self.step, StepRecord()
        return record

    def _reward(self, result: JudgeResult, reached_eos: bool) -> float | None:
        if result.valid:
            reward = result.reward
        elif self.invalid_policy == "drop":
            return None
        else:
            reward = self.invalid_penalty
        if not reached_eos:
            reward -= self.missing_eos_penalty
        return reward

    def _record(self, responses, prompts, results, rewards, reached_eos, lengths):
        step = self.step
        invalid = sum(not r.valid for r in results)
        step.judged += len(results)
        step.invalid += invalid
        step.missing_eos += sum(not eos for eos in reached_eos)
        step.lengths.extend(lengths)
        step.scores.extend(r.score for r in results if r.valid)
        step.rewards.extend(r for r in rewards if r is not None)
        self.total_judged += len(results)
        self.total_invalid += invalid
        if invalid:
            logger.warning(
                "%d of %d responses have no valid judge score after a retry "
                "(policy %s); first error: %s",
                invalid,
                len(results),
                self.invalid_policy,
                next(r.error for r in results if not r.valid),
            )
        room = self.samples_per_step - len(step.samples)
        for prompt, text, result, reward in list(
            zip(prompts, responses, results, rewards, strict=True)
        )[: max(room, 0)]:
            step.samples.append(
                {
                    "prompt": prompt,
                    "response": text,
                    "score": result.score,
                    "reward": reward,
                    "valid": result.valid,
                }
            )

    def _enforce_invalid_rate(self) -> None:
        if self.total_judged < self.invalid_rate_min_samples:
            return
        if self.invalid_rate > self.max_invalid_rate:
            raise InvalidRateExceededError(
                f"judge/invalid_rate={self.invalid_rate:.3f} "
                f"({self.total_invalid}/{self.total_judged}) passed "
                f"judge.max_invalid_rate={self.max_invalid_rate}: check the "
                "judge's rubric and logs, or raise the limit"
            )


def summarise(values: Sequence[float]) -> tuple[float, float]:
    """Mean and population std; NaN-free for empty input (both 0)."""
    if not values:
        return 0.0, 0.0
    return statistics.fmean(values), statistics.pstdev(values)
