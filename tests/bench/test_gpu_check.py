"""bench/gpu_check.py: its CPU-safe parts, and its parts on tiny CPU shapes.

The GPU run itself needs a lent H200; these tests run the same code paths
(config builders, the report writer, the checks, the time boxes, the wheel
unpacking, the judge and vLLM parts) on the CPU in a few seconds.
"""

from __future__ import annotations

import json
import math
import zipfile
from types import SimpleNamespace

import pytest

from bench import gpu_check
from bench.gpu_check import (
    CheckError,
    figure_checks,
    gpu_plan,
    llama_config,
    offline_score,
    ppo_train_config,
    smoke_plan,
    write_report,
)


@pytest.fixture(scope="module")
def tokenizer():
    return gpu_check.build_tokenizer()


def test_llama_configs_have_the_llama2_shapes_and_our_special_ids(tokenizer):
    big = llama_config("llama-2-13b", tokenizer)
    assert (big.hidden_size, big.num_hidden_layers, big.intermediate_size) == (
        5120,
        40,
        13824,
    )
    assert big.vocab_size == 32000 > len(tokenizer)
    assert big.pad_token_id == tokenizer.pad_token_id != big.eos_token_id
    seven = llama_config("llama-2-7b", tokenizer)
    assert (seven.hidden_size, seven.num_attention_heads) == (4096, 32)
    assert llama_config("tiny", tokenizer, vocab_size=10).vocab_size == len(tokenizer)


def test_unknown_shape_names_the_known_ones(tokenizer):
    with pytest.raises(CheckError, match="llama-2-7b"):
        llama_config("llama-2-70b", tokenizer)


def test_ppo_config_is_one_the_trainer_accepts(tmp_path):
    from trainer.config import config_from_dict

    questions = tmp_path / "q.txt"
    questions.write_text("What can I cook with lentils?\n")
    config = config_from_dict(ppo_train_config(gpu_plan(), tmp_path, questions))
    assert (config.lora.r, config.lora.alpha, config.model.dtype) == (
        8,
        32,
        "bfloat16",
    )
    assert config.ppo.value_lora and config.generation.max_new_tokens == 150


def test_plans_fit_the_eight_minute_budget():
    for plan in (gpu_plan(), smoke_plan()):
        assert plan.total_budget_s <= 470  # gpu_check.sh kills at 480 s
        assert set(plan.part_budget_s) == set(gpu_check.PARTS)


def test_report_writer_nulls_non_finite_values_and_names_them(tmp_path):
    path = tmp_path / "out" / "report.json"
    bad = write_report(path, {"a": 1.5, "b": [float("nan")], "c": {"d": math.inf}})
    assert bad == ["$.b[0]", "$.c.d"]
    written = json.loads(path.read_text())
    assert written["b"] == [None] and written["c"] == {"d": None}
    assert written["non_finite_values"] == bad
    assert not list(path.parent.glob("*.partial"))


def _good_judge_figures() -> dict:
    return {
        "logprob_texts_per_s": 10.0, "text_texts_per_s": 5.0,
        "logprob_score_min": 0.2, "logprob_score_max": 0.7,
        "logprob_valid_fraction": 1.0, "logprob_tokens_per_score": 1,
        "text_tokens_per_score": 6, "max_new_tokens": 6,
        "prefix_cache": {"max_digit_prob_diff": 0.001},
    }  # fmt: skip


def test_judge_checks_pass_good_figures_and_flag_nan_and_bad_scores():
    assert figure_checks("judge", _good_judge_figures()) == []
    figures = _good_judge_figures() | {"logprob_score_max": 1.5}
    figures["prefix_cache"] = {"max_digit_prob_diff": float("nan")}
    failed = figure_checks("judge", figures)
    assert any("outside [0, 1]" in f for f in failed)
    assert any("prefix_cache.max_digit_prob_diff is not finite" in f for f in failed)


def test_ppo_checks_flag_an_incomplete_run():
    figures = {"status": "judge_unavailable", "steps": 1, "target_steps": 4,
               "step_s_median": 2.0, "generation_share": 0.5}  # fmt: skip
    failed = figure_checks("ppo", figures)
    assert len(failed) == 2 and "did not complete" in failed[0]


def test_offline_scores_are_deterministic_and_inside_the_open_interval():
    scores = [offline_score(f"text {i}") for i in range(200)]
    assert scores == [offline_score(f"text {i}") for i in range(200)]
    assert 0.05 <= min(scores) < max(scores) <= 0.95


def test_missing_module_is_unpacked_from_its_wheel_and_present_one_is_not(tmp_path):
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    for name in ("gpu_check_probe_mod", "json"):
        with zipfile.ZipFile(wheels / f"{name}-1.0-py3-none-any.whl", "w") as whl:
            whl.writestr(f"{name}/__init__.py", "VALUE = 42\n")
    mapping = {"gpu_check_probe_mod": "gpu_check_probe_mod", "json": "json"}
    target = tmp_path / "site"
    installed = gpu_check.ensure_modules(target, wheels, mapping)
    assert installed == ["gpu_check_probe_mod-1.0-py3-none-any.whl"]
    assert (target / "gpu_check_probe_mod" / "__init__.py").is_file()
    assert not (target / "json").exists()


def test_a_failing_part_records_its_traceback(tmp_path, monkeypatch):
    def broken(plan, progress):
        progress["reached"] = True
        raise ValueError("boom")

    monkeypatch.setitem(gpu_check.PART_FUNCTIONS, "judge", broken)
    assert gpu_check.run_part("judge", smoke_plan(), tmp_path / "r.json") == 1
    part = json.loads((tmp_path / "r.json").read_text())
    assert part["status"] == "failed" and "ValueError: boom" in part["error"]
    assert part["figures"] == {"reached": True}


def test_a_part_over_its_time_box_is_killed_and_reported(tmp_path):
    env = gpu_check._child_env(tmp_path)
    part = gpu_check._run_child("ppo", 0.5, tmp_path, env, cpu_smoke=True)
    assert part["status"] == "timeout" and "0s" in part["error"]


def test_judge_part_on_a_tiny_shape_passes_its_own_checks():
    figures: dict = {}
    gpu_check.judge_part(smoke_plan(), figures)
    assert figure_checks("judge", figures) == []
    assert figures["model_vocab"] == 32000
    assert figures["prefix_cache"]["prefix_tokens"] > 0


class _FakeSamplingParams:
    __struct_fields__ = ("max_tokens", "temperature", "logprobs", "logprob_token_ids")

    def __init__(self, **kwargs):
        self.kwargs = kwargs


class _FakeEngine:
    """Answers every logprob request with p(digit 3) = 0.6, p(digit 7) = 0.4."""

    def __init__(self, args):
        self.args = args

    async def generate(self, prompt, params, request_id):
        ids = params.kwargs["logprob_token_ids"]
        step = {
            ids[3]: SimpleNamespace(logprob=math.log(0.6)),
            ids[7]: SimpleNamespace(logprob=math.log(0.4)),
        }
        yield SimpleNamespace(
            outputs=[SimpleNamespace(text="3", token_ids=[1], logprobs=[step])]
        )

    def shutdown(self):
        pass


def test_vllm_part_on_a_fake_engine_reports_speed_and_valid_scores():
    fake = SimpleNamespace(
        SamplingParams=_FakeSamplingParams,
        AsyncEngineArgs=lambda **kwargs: kwargs,
        AsyncLLM=SimpleNamespace(from_engine_args=_FakeEngine),
        TokensPrompt=lambda prompt_token_ids: {"prompt_token_ids": prompt_token_ids},
        StructuredOutputsParams=lambda regex: {"regex": regex},
    )
    figures: dict = {}
    gpu_check.vllm_part(smoke_plan(), figures, vllm=fake)
    assert figures["valid_fraction"] == 1.0 and figures["texts_per_s"] > 0
    assert figures["prefix_cache_hit_rate"] is None  # the fake exports no metrics
    assert figure_checks("vllm", figures) == []


def test_prefix_counters_read_vllm_metric_names():
    from prometheus_client import CollectorRegistry, Counter

    registry = CollectorRegistry()
    Counter("vllm:prefix_cache_queries", "q", registry=registry).inc(100)
    Counter("vllm:prefix_cache_hits", "h", registry=registry).inc(80)
    assert gpu_check.prefix_counters(registry) == {"queries": 100.0, "hits": 80.0}
    assert gpu_check.prefix_counters(CollectorRegistry()) == {}
