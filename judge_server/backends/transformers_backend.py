"""A local Hugging Face causal LM as the judge (CPU or GPU).

Logprob mode (the default) runs one forward pass per batch on prompts that
end with the reply prefix ``0.`` and reads the digit distribution
(expected_score.py). Text mode greedily generates a few tokens and parses
them (parsing.py); only the generated tokens are decoded, never the
prompt. If the tokenizer cannot do logprob mode (a digit after "0." is not
one token) the backend says so with a WARNING and uses text mode.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Mapping, Sequence

from judge_server.backends.base import JudgeBackend, JudgeRequest
from judge_server.config import TransformersConfig
from judge_server.errors import BackendUnavailableError, TextTooLongError
from judge_server.expected_score import (
    REPLY_PREFIX,
    DigitTokensError,
    digit_token_ids,
    outcome_from_digit_probs,
)
from judge_server.parsing import parse_score
from judge_server.prompting import render_prompt_ids
from judge_server.rubrics import Rubric
from judge_server.scores import JudgeOutcome

logger = logging.getLogger(__name__)


class TransformersBackend(JudgeBackend):
    def __init__(self, config: TransformersConfig) -> None:
        self.config = config
        self.model_name = config.model_path.name
        self.mode = config.mode
        self._model = None
        self._tokenizer = None
        self._digit_ids: list[int] | None = None
        self._context = config.max_context_tokens or 0
        self._lock = threading.Lock()  # one forward pass at a time

    async def start(self, rubrics: Mapping[str, Rubric]) -> None:
        await asyncio.to_thread(self._load)

    @property
    def ready(self) -> bool:
        return self._model is not None

    def _load(self) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        path = self.config.model_path
        if not path.is_dir():
            raise BackendUnavailableError(
                f"transformers.model_path {str(path)!r} is not a model folder"
            )
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        tokenizer.padding_side = "left"
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        dtype = (
            "auto" if self.config.dtype == "auto" else getattr(torch, self.config.dtype)
        )
        model = AutoModelForCausalLM.from_pretrained(
            path, dtype=dtype, local_files_only=True
        ).to(self.config.device)
        model.eval()
        if self.mode == "logprob":
            try:
                self._digit_ids = digit_token_ids(tokenizer)
            except DigitTokensError as exc:
                logger.warning("%s; falling back to text mode", exc)
                self.mode = "text"
        if not self._context:
            self._context = int(
                getattr(model.config, "max_position_embeddings", 0) or 2048
            )
        self._tokenizer, self._model = tokenizer, model

    def _prompt_ids(self, request: JudgeRequest) -> list[int]:
        prefix = REPLY_PREFIX if self.mode == "logprob" else ""
        return render_prompt_ids(
            self._tokenizer, request.rubric, request.text, request.prompt, prefix
        )

    def check_fits(self, request: JudgeRequest) -> None:
        if self._tokenizer is None:
            return
        needed = len(self._prompt_ids(request)) + (
            1 if self.mode == "logprob" else self.config.max_new_tokens
        )
        if needed > self._context:
            raise TextTooLongError(
                f"the judge prompt needs {needed} tokens but the judge's context is "
                f"{self._context}: shorten the text"
            )

    async def judge(self, batch: Sequence[JudgeRequest]) -> list[JudgeOutcome]:
        return await asyncio.to_thread(self.judge_sync, batch)

    def judge_sync(self, batch: Sequence[JudgeRequest]) -> list[JudgeOutcome]:
        """Blocking form of :meth:`judge`."""
        if not batch:
            return []
        prompts = [self._prompt_ids(request) for request in batch]
        with self._lock:
            if self.mode == "logprob":
                return self._judge_logprob(prompts)
            return self._judge_text(prompts)

    def _padded(self, prompts: list[list[int]]):
        import torch

        width = max(len(p) for p in prompts)
        pad = self._tokenizer.pad_token_id
        ids = torch.full((len(prompts), width), pad, dtype=torch.long)
        mask = torch.zeros((len(prompts), width), dtype=torch.long)
        for row, prompt in enumerate(prompts):  # left padding
            ids[row, width - len(prompt) :] = torch.tensor(prompt)
            mask[row, width - len(prompt) :] = 1
        device = self._model.device
        return ids.to(device), mask.to(device)

    def _judge_logprob(self, prompts: list[list[int]]) -> list[JudgeOutcome]:
        import torch

        ids, mask = self._padded(prompts)
        with torch.inference_mode():
            logits = self._model(input_ids=ids, attention_mask=mask).logits[:, -1, :]
        probs = torch.softmax(logits.float(), dim=-1)[:, self._digit_ids]
        return [
            outcome_from_digit_probs(
                {d: float(p) for d, p in enumerate(row)}, self.config.min_score_mass
            )
            for row in probs.cpu()
        ]

    def _judge_text(self, prompts: list[list[int]]) -> list[JudgeOutcome]:
        import torch

        ids, mask = self._padded(prompts)
        tokenizer = self._tokenizer
        with torch.inference_mode():
            output = self._model.generate(
                input_ids=ids,
                attention_mask=mask,
                max_new_tokens=self.config.max_new_tokens,
                do_sample=False,
                pad_token_id=tokenizer.pad_token_id,
                eos_token_id=tokenizer.eos_token_id,
            )
        outcomes = []
        for row in output[:, ids.shape[1] :].cpu().tolist():
            generated = _strip_after_eos(
                row, tokenizer.eos_token_id, tokenizer.pad_token_id
            )
            reply = tokenizer.decode(generated, skip_special_tokens=True)
            outcomes.append(parse_score(reply, tokens=len(generated)))
        return outcomes

    async def close(self) -> None:
        self._model = None


def _strip_after_eos(tokens: list[int], eos: int | None, pad: int | None) -> list[int]:
    """The generated tokens up to (not including) EOS; padding dropped."""
    out = []
    for token in tokens:
        if token == eos:
            break
        if token != pad:
            out.append(token)
    return out
