"""The vLLM engine in-process (AsyncLLM) as the judge, for GPUs.

The production judge (Llama-2-70b-chat) runs here with tensor parallelism
and a memory fraction from the config. Prefix caching is on, so the rubric
prefix that every prompt shares is computed once per GPU, not per text.

Logprob mode asks for one token after the prefilled ``0.`` with its top
logprobs (and, where this vLLM supports ``logprob_token_ids``, the digits'
logprobs even outside the top k). Text mode constrains the reply with
``structured_outputs`` to a number in 0..1, so the parser always has one
number to read. (The older ``guided_*`` fields were removed in vLLM 0.12
and are silently ignored by newer versions: they must not be used.)

vLLM is an optional dependency (``pip install -e .[gpu]``), imported only
when this backend is selected.
"""

from __future__ import annotations

import asyncio
import logging
import math
import uuid
from collections.abc import Mapping, Sequence
from types import SimpleNamespace
from typing import Any

from judge_server.backends.base import JudgeBackend, JudgeRequest
from judge_server.config import VLLMConfig
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

SCORE_REGEX = r"(0(\.[0-9]{1,2})?|1(\.0{1,2})?)"


def import_vllm() -> SimpleNamespace:
    """The parts of vLLM this backend uses, or an error that says how."""
    try:
        from vllm import SamplingParams
        from vllm.engine.arg_utils import AsyncEngineArgs
        from vllm.inputs import TokensPrompt
        from vllm.sampling_params import StructuredOutputsParams
        from vllm.v1.engine.async_llm import AsyncLLM
    except ImportError as exc:
        raise BackendUnavailableError(
            "the vllm backend needs vLLM, which is not installed: run "
            "`pip install -e .[gpu]` on a machine with a GPU, or choose the "
            f"transformers or openai backend ({exc})"
        ) from exc
    return SimpleNamespace(
        SamplingParams=SamplingParams,
        AsyncEngineArgs=AsyncEngineArgs,
        AsyncLLM=AsyncLLM,
        TokensPrompt=TokensPrompt,
        StructuredOutputsParams=StructuredOutputsParams,
    )


class VLLMBackend(JudgeBackend):
    def __init__(self, config: VLLMConfig, vllm: SimpleNamespace | None = None) -> None:
        self.config = config
        self.model_name = config.model.rstrip("/").rsplit("/", 1)[-1]
        self.mode = config.mode
        self._vllm = vllm  # injectable: tests pass a fake engine module
        self._engine: Any = None
        self._tokenizer: Any = None
        self._digit_ids: list[int] | None = None

    async def start(self, rubrics: Mapping[str, Rubric]) -> None:
        from transformers import AutoTokenizer

        vllm = self._vllm = self._vllm or import_vllm()
        self._tokenizer = AutoTokenizer.from_pretrained(self.config.model)
        if self.mode == "logprob":
            try:
                self._digit_ids = digit_token_ids(self._tokenizer)
            except DigitTokensError as exc:
                logger.warning("%s; falling back to text mode", exc)
                self.mode = "text"
        args = vllm.AsyncEngineArgs(
            model=self.config.model,
            tensor_parallel_size=self.config.tensor_parallel_size,
            gpu_memory_utilization=self.config.gpu_memory_utilization,
            max_model_len=self.config.max_model_len,
            enable_prefix_caching=self.config.enable_prefix_caching,
            load_format=self.config.load_format,
            dtype=self.config.dtype,
            max_logprobs=self.config.max_logprobs,
        )
        self._engine = vllm.AsyncLLM.from_engine_args(args)

    @property
    def ready(self) -> bool:
        return self._engine is not None

    async def close(self) -> None:
        if self._engine is not None:
            self._engine.shutdown()
            self._engine = None

    def _prompt_ids(self, request: JudgeRequest) -> list[int]:
        prefix = REPLY_PREFIX if self.mode == "logprob" else ""
        return render_prompt_ids(
            self._tokenizer, request.rubric, request.text, request.prompt, prefix
        )

    def check_fits(self, request: JudgeRequest) -> None:
        if self._tokenizer is None:
            return
        reply = 1 if self.mode == "logprob" else self.config.max_new_tokens
        needed = len(self._prompt_ids(request)) + reply
        if needed > self.config.max_model_len:
            # vLLM has answered an over-long prompt with an empty completion
            # in some versions; refusing here keeps that from being parsed.
            raise TextTooLongError(
                f"the judge prompt needs {needed} tokens but max_model_len is "
                f"{self.config.max_model_len}: shorten the text"
            )

    def _sampling_params(self) -> Any:
        vllm = self._vllm
        if self.mode == "text":
            return vllm.SamplingParams(
                max_tokens=self.config.max_new_tokens,
                temperature=0.0,
                structured_outputs=vllm.StructuredOutputsParams(regex=SCORE_REGEX),
            )
        options: dict[str, Any] = {
            "max_tokens": 1,
            "temperature": 0.0,
            "logprobs": self.config.max_logprobs,
        }
        if "logprob_token_ids" in getattr(vllm.SamplingParams, "__struct_fields__", ()):
            options["logprob_token_ids"] = list(self._digit_ids or ())
        return vllm.SamplingParams(**options)

    async def judge(self, batch: Sequence[JudgeRequest]) -> list[JudgeOutcome]:
        params = self._sampling_params()
        return list(await asyncio.gather(*(self._judge_one(r, params) for r in batch)))

    async def _judge_one(self, request: JudgeRequest, params: Any) -> JudgeOutcome:
        prompt = self._vllm.TokensPrompt(prompt_token_ids=self._prompt_ids(request))
        final = None
        async for output in self._engine.generate(
            prompt, params, request_id=f"judge-{uuid.uuid4().hex}"
        ):
            final = output
        if final is None or not final.outputs:
            return JudgeOutcome.invalid(
                "", "the engine returned no output", "no_output"
            )
        completion = final.outputs[0]
        if self.mode == "text":
            return parse_score(completion.text, tokens=len(completion.token_ids))
        step = (completion.logprobs or [None])[0]
        if not step:
            return JudgeOutcome.invalid(
                completion.text, "the engine returned no logprobs", "no_logprobs", 1
            )
        probs = {
            digit: math.exp(step[token_id].logprob) if token_id in step else 0.0
            for digit, token_id in enumerate(self._digit_ids or ())
        }
        return outcome_from_digit_probs(probs, self.config.min_score_mass)
