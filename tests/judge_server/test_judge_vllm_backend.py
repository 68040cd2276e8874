"""The vllm backend: the missing-install error, and its logic on a fake engine.

vLLM is not installed here (it is the optional ``gpu`` extra), so the engine
is a small fake with AsyncLLM's shape: ``generate`` is an async generator of
request outputs whose ``logprobs`` map token ids to objects with a
``logprob``.
"""

import asyncio
import math
import re
from types import SimpleNamespace

import pytest

from judge_server.backends import create_backend
from judge_server.backends.base import JudgeRequest
from judge_server.backends.vllm_backend import SCORE_REGEX, VLLMBackend
from judge_server.config import JudgeConfig, VLLMConfig
from judge_server.errors import BackendUnavailableError
from judge_server.expected_score import digit_token_ids


class FakeSamplingParams:
    __struct_fields__ = ("max_tokens", "temperature", "logprobs", "logprob_token_ids")

    def __init__(self, **kwargs):
        self.kwargs = kwargs


class FakeEngine:
    def __init__(self, digit_ids, engine_args):
        self.digit_ids, self.engine_args = digit_ids, engine_args
        self.prompts = []

    @classmethod
    def factory(cls, digit_ids):
        return SimpleNamespace(from_engine_args=lambda args: cls(digit_ids, args))

    async def generate(self, prompt, params, request_id):
        self.prompts.append(prompt["prompt_token_ids"])
        if "structured_outputs" in params.kwargs:
            yield SimpleNamespace(
                outputs=[SimpleNamespace(text="0.35", token_ids=[1, 2])]
            )
            return
        # 0.7 for digit 2 and 0.3 for digit 8; nothing else among the digits.
        step = {
            self.digit_ids[2]: SimpleNamespace(logprob=math.log(0.7)),
            self.digit_ids[8]: SimpleNamespace(logprob=math.log(0.3)),
        }
        yield SimpleNamespace(
            outputs=[SimpleNamespace(text="2", token_ids=[9], logprobs=[step])]
        )

    def shutdown(self):
        pass


def fake_vllm(digit_ids):
    return SimpleNamespace(
        SamplingParams=FakeSamplingParams,
        AsyncEngineArgs=lambda **kwargs: kwargs,
        AsyncLLM=FakeEngine.factory(digit_ids),
        TokensPrompt=lambda prompt_token_ids: {"prompt_token_ids": prompt_token_ids},
        StructuredOutputsParams=lambda regex: {"regex": regex},
    )


def test_missing_vllm_says_how_to_install(tmp_path, rubrics):
    config = JudgeConfig(backend="vllm", vllm=VLLMConfig(model=str(tmp_path)))
    backend = create_backend(config)
    with pytest.raises(
        BackendUnavailableError, match=re.escape("pip install -e .[gpu]")
    ):
        asyncio.run(backend.start(rubrics))


def run_backend(folder, rubrics, **options):
    from transformers import AutoTokenizer

    digit_ids = digit_token_ids(AutoTokenizer.from_pretrained(folder))
    config = VLLMConfig(
        model=str(folder),
        tensor_parallel_size=8,
        gpu_memory_utilization=0.85,
        max_model_len=4096,
        load_format="dummy",
        **options,
    )
    backend = VLLMBackend(config, vllm=fake_vllm(digit_ids))

    async def scenario():
        await backend.start(rubrics)
        rubric = rubrics["vegetarian"]
        outcomes = await backend.judge(
            [JudgeRequest(rubric, "Try tofu."), JudgeRequest(rubric, "Try ham.")]
        )
        engine = backend._engine
        await backend.close()
        return outcomes, engine

    return asyncio.run(scenario())


def test_logprob_mode_reads_digit_logprobs_from_the_engine(tiny_judge_dir, rubrics):
    outcomes, engine = run_backend(tiny_judge_dir, rubrics)
    assert engine.engine_args["tensor_parallel_size"] == 8
    assert engine.engine_args["gpu_memory_utilization"] == 0.85
    assert engine.engine_args["enable_prefix_caching"] is True
    assert engine.engine_args["load_format"] == "dummy"
    expected = 0.7 * 0.25 + 0.3 * 0.85
    assert [o.score for o in outcomes] == pytest.approx([expected, expected])
    assert len(engine.prompts) == 2 and engine.prompts[0] != engine.prompts[1]


def test_text_mode_constrains_the_reply_with_structured_outputs(
    tiny_judge_dir, rubrics
):
    outcomes, engine = run_backend(tiny_judge_dir, rubrics, mode="text")
    assert [o.score for o in outcomes] == [0.35, 0.35]
    assert re.fullmatch(SCORE_REGEX, "0.85") and re.fullmatch(SCORE_REGEX, "1.0")
    assert not re.fullmatch(SCORE_REGEX, "1.5")
