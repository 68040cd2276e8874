"""The prepared check for a lent GPU machine (issue 9): one JSON of figures.

Run it as ``bench/gpu_check.sh`` (or ``python -m bench.gpu_check``) from the
working tree. Nothing is downloaded: every model is a random-weight Llama
built from a config of the real shape, with a byte-level BPE tokenizer
trained here on ``data/food_qa.jsonl`` (about 1.1k tokens instead of
Llama-2's 32k SentencePiece vocabulary; the models keep Llama-2's 32000
embedding rows, and ids the small tokenizer lacks decode to nothing).

Parts, each in its own child process with its own time box, so a crash,
an out-of-memory or a hang costs that part only and frees the GPU:

- ``judge``: the transformers judge backend on a Llama-2-13b shape in bf16,
  texts/s in logprob and text mode (alternating rounds), generated tokens
  per score, and what a prefix KV cache of the rubric would save;
- ``ppo``: PPO + LoRA through our trainer (``trainer.run.train``) on a
  Llama-2-7b shape: step time, its generation share, peak GPU memory; the
  judge is an offline scorer behind the real ``JudgeClient`` (no server);
- ``vllm``: only where vLLM is importable, our vLLM judge backend with
  ``load_format: dummy``: texts/s and the prefix-cache hit rate.

Every part checks its own figures (finite, in range, the run completed)
and lists failed checks; the report's ``ok`` is true only when every part
ran or was skipped for a stated reason and no check failed.
``--cpu-smoke`` runs the same code with tiny shapes on the CPU, which is
how this file is tested without a GPU.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import functools
import importlib.util
import json
import logging
import math
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
import zlib
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
WHEELS = ROOT / "bench" / "wheels"
PARTS = ("judge", "ppo", "vllm")

# Llama-2 shapes (the Hugging Face configs of meta-llama/Llama-2-*-hf).
LLAMA2_COMMON = {"vocab_size": 32000, "max_position_embeddings": 4096,
                 "rms_norm_eps": 1e-5, "tie_word_embeddings": False}  # fmt: skip
SHAPES: dict[str, dict[str, int]] = {
    "llama-2-7b": {"hidden_size": 4096, "intermediate_size": 11008,
                   "num_hidden_layers": 32, "num_attention_heads": 32,
                   "num_key_value_heads": 32},
    "llama-2-13b": {"hidden_size": 5120, "intermediate_size": 13824,
                    "num_hidden_layers": 40, "num_attention_heads": 40,
                    "num_key_value_heads": 40},
    "tiny": {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
             "num_attention_heads": 4, "num_key_value_heads": 4},
}  # fmt: skip

# Module a part imports -> the wheel (in bench/wheels) that provides it.
# Installed only where the machine lacks the module.
WHEEL_FOR_MODULE = {
    "trl": "trl", "datasets": "datasets", "dill": "dill",
    "multiprocess": "multiprocess", "xxhash": "xxhash", "fsspec": "fsspec",
    "pandas": "pandas", "dateutil": "python_dateutil", "tzdata": "tzdata",
    "pydantic": "pydantic", "pydantic_core": "pydantic_core",
    "pydantic_settings": "pydantic_settings", "dotenv": "python_dotenv",
    "typing_inspection": "typing_inspection", "annotated_types": "annotated_types",
}  # fmt: skip

logger = logging.getLogger("bench.gpu_check")


class CheckError(RuntimeError):
    """A part cannot run at all (bad arguments, nothing to measure)."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class Plan:
    """Sizes and time boxes of one check run; see gpu_plan and smoke_plan."""

    device: str
    dtype: str
    judge_shape: str
    policy_shape: str
    judge_texts: int
    judge_rounds: int
    prefix_texts: int
    judge_max_new_tokens: int
    ppo_steps: int
    ppo_rollout: int
    ppo_micro_batch: int
    ppo_max_new_tokens: int
    vllm_texts: int
    total_budget_s: float
    part_budget_s: dict[str, float]


def gpu_plan() -> Plan:
    """The lent H200: 8 minutes in all, the PPO part gets the most."""
    return Plan(
        device="cuda", dtype="bfloat16", judge_shape="llama-2-13b",
        policy_shape="llama-2-7b", judge_texts=64, judge_rounds=3,
        prefix_texts=16, judge_max_new_tokens=6, ppo_steps=4, ppo_rollout=8,
        ppo_micro_batch=4, ppo_max_new_tokens=150, vllm_texts=256,
        total_budget_s=450,
        part_budget_s={"judge": 150, "ppo": 240, "vllm": 150},
    )  # fmt: skip


def smoke_plan() -> Plan:
    """The same code on the CPU with tiny shapes: the test of this file."""
    return Plan(
        device="cpu", dtype="float32", judge_shape="tiny", policy_shape="tiny",
        judge_texts=4, judge_rounds=1, prefix_texts=4, judge_max_new_tokens=4,
        ppo_steps=2, ppo_rollout=4, ppo_micro_batch=2, ppo_max_new_tokens=8,
        vllm_texts=8, total_budget_s=240,
        part_budget_s={"judge": 90, "ppo": 150, "vllm": 60},
    )  # fmt: skip


# -- building blocks (CPU-safe, tested) ---------------------------------------


def llama_config(shape: str, tokenizer, *, vocab_size: int | None = None):
    """A LlamaConfig of a named shape whose special ids match ``tokenizer``."""
    from transformers import LlamaConfig

    if shape not in SHAPES:
        raise CheckError(f"unknown shape {shape!r}: use one of {sorted(SHAPES)}")
    sizes = {**LLAMA2_COMMON, **SHAPES[shape]}
    sizes["vocab_size"] = max(vocab_size or sizes["vocab_size"], len(tokenizer))
    return LlamaConfig(
        **sizes,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )


@functools.lru_cache(maxsize=1)
def build_tokenizer():
    """Byte-level BPE on the shipped food corpus, with our chat template."""
    from rlaif.tiny_model import train_tokenizer

    tokenizer = train_tokenizer(_corpus_texts(), vocab_size=32000)
    tokenizer.model_max_length = LLAMA2_COMMON["max_position_embeddings"]
    return tokenizer


def random_llama(config, device: str, dtype: str, seed: int = 0):
    """Random weights built directly on ``device`` in ``dtype`` (seconds on a GPU)."""
    import torch
    from transformers import LlamaForCausalLM

    torch.manual_seed(seed)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(getattr(torch, dtype))
    try:
        with torch.device(device):
            model = LlamaForCausalLM(config)
    finally:
        torch.set_default_dtype(previous)
    for generation in (model.generation_config,):
        generation.bos_token_id = config.bos_token_id
        generation.eos_token_id = config.eos_token_id
        generation.pad_token_id = config.pad_token_id
    return model.eval()


def ppo_train_config(plan: Plan, model_dir: Path, questions: Path) -> dict[str, Any]:
    """The trainer config of the PPO part: the reference system's LoRA and PPO."""
    return {
        "algo": "ppo",
        "model": {"path": str(model_dir), "dtype": plan.dtype},
        "lora": {"r": 8, "alpha": 32, "dropout": 0.05},
        "generation": {"max_new_tokens": plan.ppo_max_new_tokens},
        "optim": {"lr": 1.5e-5, "steps": plan.ppo_steps,
                  "rollout_batch_size": plan.ppo_rollout,
                  "micro_batch_size": plan.ppo_micro_batch},
        "ppo": {"value_lora": True},
        "judge": {"urls": ["http://offline-judge.invalid"], "max_invalid_rate": 1.0},
        "prompts": {"train": str(questions)},
        "logging": {"tensorboard": False},
        "checkpoints": {"every": 0},
    }  # fmt: skip


def offline_score(text: str) -> float:
    """A deterministic score in [0.05, 0.95] from the text's checksum."""
    return round(0.05 + 0.9 * (zlib.crc32(text.encode()) % 1000) / 999, 6)


def finite_json(value: Any, path: str = "$", bad: list[str] | None = None) -> Any:
    """``value`` with NaN/inf floats replaced by None; their paths go to ``bad``."""
    if isinstance(value, float) and not math.isfinite(value):
        if bad is not None:
            bad.append(path)
        return None
    if isinstance(value, dict):
        return {k: finite_json(v, f"{path}.{k}", bad) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite_json(v, f"{path}[{i}]", bad) for i, v in enumerate(value)]
    return value


def write_report(path: Path, report: dict[str, Any]) -> list[str]:
    """Write strict JSON atomically; returns the paths of non-finite values."""
    bad: list[str] = []
    clean = finite_json(report, bad=bad)
    if bad:
        clean["non_finite_values"] = bad
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(clean, indent=2, allow_nan=False) + "\n")
    os.replace(partial, path)
    return bad


def figure_checks(part: str, figures: dict[str, Any]) -> list[str]:
    """The sanity checks of one part's figures; each failure as a sentence."""
    failed = [
        f"{key} is not finite ({value!r})"
        for key, value in _numbers(figures)
        if not math.isfinite(value)
    ]
    rules = {
        "judge": _judge_checks,
        "ppo": _ppo_checks,
        "vllm": _vllm_checks,
    }
    return failed + rules[part](figures)


def _numbers(figures: dict[str, Any], prefix: str = ""):
    for key, value in figures.items():
        if isinstance(value, dict):
            yield from _numbers(value, f"{prefix}{key}.")
        elif isinstance(value, float | int) and not isinstance(value, bool):
            yield f"{prefix}{key}", float(value)


def _judge_checks(f: dict[str, Any]) -> list[str]:
    failed = []
    for mode in ("logprob", "text"):
        if f.get(f"{mode}_texts_per_s", 0) <= 0:
            failed.append(f"{mode}_texts_per_s missing or not positive")
    low, high = f.get("logprob_score_min", -1), f.get("logprob_score_max", 2)
    if not 0 <= low <= high <= 1:
        failed.append(f"logprob scores outside [0, 1]: {low}..{high}")
    if f.get("logprob_valid_fraction") != 1.0:
        failed.append("some logprob scores are invalid with min_score_mass=0")
    if f.get("logprob_tokens_per_score") != 1:
        failed.append("logprob mode did not read exactly one token per score")
    if not 0 < f.get("text_tokens_per_score", 0) <= f.get("max_new_tokens", 0):
        failed.append("text mode generated no tokens or more than max_new_tokens")
    # bf16 rounds the two passes differently; 0.1 still catches a wrong cache.
    if f.get("prefix_cache", {}).get("max_digit_prob_diff", 1) > 0.1:
        failed.append("prefix-cached pass disagrees with the full pass")
    return failed


def _ppo_checks(f: dict[str, Any]) -> list[str]:
    failed = []
    if f.get("status") != "completed":
        failed.append(f"training did not complete: {f.get('status')}")
    if f.get("steps") != f.get("target_steps"):
        failed.append(f"ran {f.get('steps')} of {f.get('target_steps')} steps")
    if not f.get("step_s_median", 0) > 0:
        failed.append("no step time was recorded")
    if not 0 <= f.get("generation_share", -1) <= 1:
        failed.append("generation share outside [0, 1]")
    return failed


def _vllm_checks(f: dict[str, Any]) -> list[str]:
    failed = []
    if f.get("texts_per_s", 0) <= 0:
        failed.append("texts_per_s missing or not positive")
    if f.get("valid_fraction") != 1.0:
        failed.append("some vLLM logprob scores are invalid with min_score_mass=0")
    rate = f.get("prefix_cache_hit_rate")
    if rate is not None and not 0 <= rate <= 1:
        failed.append(f"prefix_cache_hit_rate {rate} outside [0, 1]")
    return failed


def _corpus_texts() -> list[str]:
    rows = (ROOT / "data" / "food_qa.jsonl").read_text().splitlines()
    parsed = [json.loads(line) for line in rows if line.strip()]
    return [f"{row['question']} {row['answer']}" for row in parsed]


def _judge_texts(n: int) -> list[str]:
    rows = (ROOT / "data" / "judge_eval.jsonl").read_text().splitlines()
    texts = [json.loads(line)["text"] for line in rows if line]
    return [texts[i % len(texts)] for i in range(n)]


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


# -- part: the transformers judge ---------------------------------------------


def judge_part(plan: Plan, progress: dict[str, Any]) -> None:
    """Texts/s in logprob and text mode, alternating, and the prefix-cache effect."""
    from bench.judge_bench import measure_prefix_cache
    from judge_server.backends.base import JudgeRequest
    from judge_server.rubrics import load_rubrics

    tokenizer = build_tokenizer()
    started = time.perf_counter()
    config = llama_config(plan.judge_shape, tokenizer)
    model = random_llama(config, plan.device, plan.dtype)
    _sync(plan.device)
    progress.update(
        shape=plan.judge_shape, dtype=plan.dtype, texts=plan.judge_texts,
        max_new_tokens=plan.judge_max_new_tokens, tokenizer_vocab=len(tokenizer),
        model_vocab=config.vocab_size, build_s=time.perf_counter() - started,
        parameters=sum(p.numel() for p in model.parameters()),
    )  # fmt: skip

    rubric = load_rubrics(ROOT / "configs" / "rubrics")["vegetarian"]
    batch = [JudgeRequest(rubric, text) for text in _judge_texts(plan.judge_texts)]
    backends = {
        mode: _random_weights_judge(model, tokenizer, mode, plan)
        for mode in ("logprob", "text")
    }
    progress["prompt_tokens_mean"] = statistics.mean(
        len(backends["logprob"]._prompt_ids(r)) for r in batch
    )
    best = {mode: math.inf for mode in backends}
    for round_ in range(plan.judge_rounds + 1):  # round 0 warms up both
        order = ("logprob", "text") if round_ % 2 else ("text", "logprob")
        for mode in order:
            started = time.perf_counter()
            outcomes = backends[mode].judge_sync(batch)
            _sync(plan.device)
            if round_:
                best[mode] = min(best[mode], time.perf_counter() - started)
                _record_outcomes(progress, mode, outcomes, len(batch) / best[mode])
    progress["logprob_over_text_speed"] = best["text"] / best["logprob"]

    prompts = [backends["logprob"]._prompt_ids(r) for r in batch[: plan.prefix_texts]]
    progress["prefix_cache"] = measure_prefix_cache(
        model, prompts, tokenizer.pad_token_id, backends["logprob"]._digit_ids, 2
    )
    cache = progress["prefix_cache"]
    cache["full_over_cached_speed"] = cache["full_s"] / cache["cached_s"]


def _random_weights_judge(model, tokenizer, mode: str, plan: Plan):
    """Our TransformersBackend, handed an in-memory model instead of a folder.

    Only loading differs (a 13b checkpoint on disk would cost minutes);
    prompt rendering, batching, the forward pass and scoring are the
    backend's own code.
    """
    from judge_server.backends.transformers_backend import TransformersBackend
    from judge_server.config import TransformersConfig
    from judge_server.expected_score import digit_token_ids

    class RandomWeightsJudge(TransformersBackend):
        def _load(self) -> None:
            self._tokenizer, self._model = tokenizer, model
            self._digit_ids = digit_token_ids(tokenizer)
            self._context = model.config.max_position_embeddings

    config = TransformersConfig(
        model_path=Path("random-weights"), mode=mode, device=plan.device,
        max_new_tokens=plan.judge_max_new_tokens, min_score_mass=0.0,
    )  # fmt: skip
    backend = RandomWeightsJudge(config)
    asyncio.run(backend.start({}))
    if backend.mode != mode:
        raise CheckError(f"the backend fell back from {mode} to {backend.mode} mode")
    return backend


def _record_outcomes(progress: dict, mode: str, outcomes, texts_per_s: float) -> None:
    valid = [o.score for o in outcomes if o.valid]
    progress[f"{mode}_texts_per_s"] = texts_per_s
    progress[f"{mode}_tokens_per_score"] = statistics.mean(
        o.generated_tokens for o in outcomes
    )
    progress[f"{mode}_valid_fraction"] = len(valid) / len(outcomes)
    if valid:
        progress[f"{mode}_score_min"], progress[f"{mode}_score_max"] = (
            min(valid),
            max(valid),
        )
    if mode == "text":
        # Random weights rarely write a number: invalid replies are expected
        # here and say nothing about the parser; speed is what counts.
        progress["text_note"] = "random weights: replies are rarely a score"


# -- part: PPO + LoRA through the trainer ---------------------------------------


def ppo_part(plan: Plan, progress: dict[str, Any]) -> None:
    """PPO + LoRA steps on a random 7b-shaped policy, via trainer.run.train."""
    import torch

    from trainer.config import config_from_dict
    from trainer.run import train

    with tempfile.TemporaryDirectory(prefix="gpu-check-ppo-") as folder:
        work = Path(folder)
        tokenizer = build_tokenizer()
        started = time.perf_counter()
        config = llama_config(plan.policy_shape, tokenizer)
        model = random_llama(config, plan.device, plan.dtype)
        model.save_pretrained(work / "policy")
        tokenizer.save_pretrained(work / "policy")
        del model
        _free_gpu()
        questions = work / "questions.txt"
        questions.write_text(
            "\n".join(json.loads(line)["question"] for line in _food_rows(64))
        )
        progress.update(shape=plan.policy_shape, dtype=plan.dtype,
                        rollout_batch_size=plan.ppo_rollout,
                        max_new_tokens=plan.ppo_max_new_tokens,
                        model_vocab=config.vocab_size, tokenizer_vocab=len(tokenizer),
                        write_model_s=time.perf_counter() - started)  # fmt: skip

        raw = ppo_train_config(plan, work / "policy", questions)
        if plan.device.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats()
        result = train(config_from_dict(raw), work / "run", client=_offline_client())
        progress.update(_ppo_figures(work / "run" / "metrics.jsonl", result))
        if plan.device.startswith("cuda"):
            progress["peak_gpu_memory_gib"] = torch.cuda.max_memory_allocated() / 2**30
            progress["peak_gpu_reserved_gib"] = torch.cuda.max_memory_reserved() / 2**30


def _offline_client():
    """The real JudgeClient with its HTTP post replaced by an offline scorer.

    Everything around the request (chunking, invalid-score retry, result
    validation, reward) is the client's own code; the judge itself is not
    under test here, the step time around it is.
    """
    from judge_server.scores import reward_from_score
    from trainer.judge_client import JudgeClient, JudgeResult

    class OfflineJudgeClient(JudgeClient):
        async def _post(self, payload, expected):
            texts = payload.get("texts") or [i["response"] for i in payload["items"]]
            self.stats.requests += 1
            scores = [offline_score(text) for text in texts]
            return [
                JudgeResult(score, reward_from_score(score), True) for score in scores
            ]

    return OfflineJudgeClient(["http://offline-judge.invalid"], "vegetarian")


def _ppo_figures(metrics: Path, result) -> dict[str, Any]:
    rows = [json.loads(line) for line in metrics.read_text().splitlines() if line]
    measured = rows[1:] or rows  # the first step compiles kernels and warms up
    step = statistics.median(r["time/step_s"] for r in measured)
    generation = statistics.median(r.get("time/generation_s", 0.0) for r in measured)
    return {
        "status": result.status,
        "steps": result.steps,
        "target_steps": result.summary.get("target_steps"),
        "step_s_median": step,
        "step_s_all": [r["time/step_s"] for r in rows],
        "generation_s_median": generation,
        "generation_share": generation / step,
        "kl_last": rows[-1].get("objective/kl") if rows else None,
    }


def _food_rows(n: int) -> list[str]:
    return (ROOT / "data" / "food_qa.jsonl").read_text().splitlines()[:n]


def _free_gpu() -> None:
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


# -- part: the vLLM judge (only where vLLM is installed) ------------------------


def vllm_part(plan: Plan, progress: dict[str, Any], vllm=None) -> None:
    """Our vLLM backend on dummy weights: texts/s and prefix-cache hit rate.

    ``vllm`` is the backend's injectable engine namespace (tests pass a
    fake); by default the real vLLM, and the part is skipped without it.
    """
    if vllm is None and importlib.util.find_spec("vllm") is None:
        progress["skipped"] = "vLLM is not importable on this machine"
        return
    from judge_server.backends.base import JudgeRequest
    from judge_server.backends.vllm_backend import VLLMBackend
    from judge_server.config import VLLMConfig
    from judge_server.rubrics import load_rubrics

    with tempfile.TemporaryDirectory(prefix="gpu-check-vllm-") as folder:
        tokenizer = build_tokenizer()
        # vLLM detokenises top logprobs: keep every id known to the tokenizer.
        config = llama_config(plan.judge_shape, tokenizer, vocab_size=len(tokenizer))
        config.architectures = ["LlamaForCausalLM"]  # how vLLM picks its model
        config.save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        settings = VLLMConfig(
            model=folder, mode="logprob", load_format="dummy", dtype=plan.dtype,
            gpu_memory_utilization=0.85, min_score_mass=0.0,
        )  # fmt: skip
        rubric = load_rubrics(ROOT / "configs" / "rubrics")["vegetarian"]
        batch = [JudgeRequest(rubric, t) for t in _judge_texts(plan.vllm_texts)]
        progress.update(shape=plan.judge_shape, texts=len(batch),
                        tokenizer_vocab=len(tokenizer))  # fmt: skip
        backend = VLLMBackend(settings, vllm=vllm)
        asyncio.run(_vllm_measure(backend, batch, rubric, progress))


async def _vllm_measure(backend, batch, rubric, progress: dict[str, Any]) -> None:
    await backend.start({rubric.name: rubric})
    try:
        await backend.judge(batch[:8])  # warm-up: fills the prefix cache
        before = prefix_counters()
        started = time.perf_counter()
        outcomes = await backend.judge(batch)
        seconds = time.perf_counter() - started
        after = prefix_counters()
    finally:
        await backend.close()
    valid = [o.score for o in outcomes if o.valid]
    progress["texts_per_s"] = len(batch) / seconds
    progress["valid_fraction"] = len(valid) / len(outcomes)
    if before and after:
        queries = after["queries"] - before["queries"]
        hits = after["hits"] - before["hits"]
        progress["prefix_cache_queries"] = queries
        progress["prefix_cache_hit_rate"] = hits / queries if queries else None
    else:
        progress["prefix_cache_hit_rate"] = None
        progress["prefix_cache_note"] = "vllm:prefix_cache_* metrics not found"


def prefix_counters(registry=None) -> dict[str, float]:
    """vLLM's prefix-cache counters from the in-process Prometheus registry.

    ``{"queries": N, "hits": M}`` (token counts), or ``{}`` when this vLLM
    does not export them.
    """
    from prometheus_client import REGISTRY

    totals: dict[str, float] = {}
    for family in (registry or REGISTRY).collect():
        for kind in ("queries", "hits"):
            if family.name.startswith(f"vllm:prefix_cache_{kind}"):
                totals[kind] = sum(
                    s.value for s in family.samples if s.name.endswith("_total")
                )
    return totals if len(totals) == 2 else {}


# -- running the parts -----------------------------------------------------------

PART_FUNCTIONS = {"judge": judge_part, "ppo": ppo_part, "vllm": vllm_part}


def run_part(name: str, plan: Plan, result_path: Path) -> int:
    """Child process: run one part, writing its figures after every update."""
    figures: dict[str, Any] = {}
    started = time.perf_counter()

    class Progress(dict):
        def __setitem__(self, key, value):
            super().__setitem__(key, value)
            _write_part(result_path, "running", started, dict(self))

        def update(self, *args, **kwargs):
            super().update(*args, **kwargs)
            _write_part(result_path, "running", started, dict(self))

    progress = Progress()
    try:
        PART_FUNCTIONS[name](plan, progress)
    except Exception:  # the parent reports it; the other parts still run
        figures = dict(progress)
        _write_part(result_path, "failed", started, figures, traceback.format_exc())
        return 1
    figures = dict(progress)
    status = "skipped" if "skipped" in figures else "ok"
    checks = [] if status == "skipped" else figure_checks(name, figures)
    _write_part(result_path, status, started, figures, checks=checks)
    return 0


def _write_part(path, status, started, figures, error=None, checks=None) -> None:
    part = {
        "status": status,
        "seconds": time.perf_counter() - started,
        "figures": figures,
        "error": error,
        "checks_failed": checks or [],
    }
    write_report(path, part)


def run_all(plan: Plan, out: Path, cpu_smoke: bool) -> dict[str, Any]:
    """Parent: each part in a child process under its time box, then one JSON."""
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as folder:
        env = _child_env(Path(folder))
        report: dict[str, Any] = {
            "plan": dataclasses.asdict(plan),
            "environment": _environment(env),
            "parts": {},
        }
        for name in PARTS:
            left = plan.total_budget_s - (time.monotonic() - started)
            budget = min(plan.part_budget_s[name], left)
            if budget < 20:
                report["parts"][name] = {"status": "skipped", "error": "no time left"}
                continue
            report["parts"][name] = _run_child(
                name, budget, Path(folder), env, cpu_smoke
            )
            write_report(out, report)  # a kill later still leaves this much
    report["seconds"] = time.monotonic() - started
    report["checks_failed"] = [
        f"{name}: {check}"
        for name, part in report["parts"].items()
        for check in part.get("checks_failed", [])
    ]
    report["ok"] = not report["checks_failed"] and all(
        part["status"] in ("ok", "skipped") for part in report["parts"].values()
    )
    write_report(out, report)
    return report


def _run_child(name, budget, folder, env, cpu_smoke) -> dict[str, Any]:
    result = folder / f"{name}.json"
    command = [sys.executable, "-m", "bench.gpu_check", "--part", name,
               "--result", str(result)]  # fmt: skip
    command += ["--cpu-smoke"] if cpu_smoke else []
    logger.info("part %s: up to %.0fs", name, budget)
    log = folder / f"{name}.log"
    with log.open("w") as sink:
        child = subprocess.Popen(
            command,
            cwd=ROOT,
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            child.wait(timeout=budget)
            timed_out = False
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGKILL)
            child.wait()
            timed_out = True
    part = json.loads(result.read_text()) if result.is_file() else {"figures": {}}
    if timed_out:
        part["status"] = "timeout"
        part["error"] = f"killed after its time box of {budget:.0f}s"
    elif part.get("status") in (None, "running"):
        part["status"] = "failed"
        part["error"] = f"the part exited with {child.returncode} before finishing"
    if part["status"] not in ("ok", "skipped"):
        part["log_tail"] = log.read_text(errors="replace")[-3000:]
    logger.info("part %s: %s", name, part["status"])
    return part


def ensure_modules(
    target: Path,
    wheels: Path = WHEELS,
    wheel_for_module: dict[str, str] = WHEEL_FOR_MODULE,
) -> list[str]:
    """Unpack from bench/wheels the wheels of modules this Python lacks.

    The lent machine has no registry; the wheels travel with the tree
    (bench/fetch_gpu_wheels.sh). A wheel is a zip of the package's files
    as they sit in site-packages, so unpacking it into ``target`` (which
    the children get on their PYTHONPATH) is all an import needs, with no
    pip and no network. Returns the wheels unpacked.
    """
    import zipfile

    missing = [
        wheel
        for module, wheel in wheel_for_module.items()
        if importlib.util.find_spec(module) is None
    ]
    files = [f for w in missing for f in sorted(wheels.glob(f"{w}-*.whl"))[:1]]
    for wheel in files:
        with zipfile.ZipFile(wheel) as archive:
            archive.extractall(target)
    absent = sorted(set(missing) - {f.name.split("-")[0] for f in files})
    if absent:
        logger.warning("no wheel in %s for %s: parts needing them fail", wheels, absent)
    return [f.name for f in files]


def _child_env(folder: Path) -> dict[str, str]:
    deps = folder / "site"
    installed = ensure_modules(deps)
    paths = [str(ROOT), *([str(deps)] if installed else [])]
    if os.environ.get("PYTHONPATH"):
        paths.append(os.environ["PYTHONPATH"])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
               TOKENIZERS_PARALLELISM="false", TRL_EXPERIMENTAL_SILENCE="1",
               GPU_CHECK_WHEELS=",".join(installed))  # fmt: skip
    return env


def _environment(env: dict[str, str]) -> dict[str, Any]:
    from importlib import metadata

    info: dict[str, Any] = {"python": platform.python_version()}
    for dist in ("torch", "transformers", "peft", "accelerate", "trl", "vllm"):
        try:
            info[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            info[dist] = None
    info["wheels_installed"] = [w for w in env["GPU_CHECK_WHEELS"].split(",") if w]
    try:
        import torch

        info["cuda"] = torch.cuda.is_available()
        info["gpu"] = torch.cuda.get_device_name(0) if info["cuda"] else None
    except Exception as exc:  # an environment report must not stop the check
        info["cuda_error"] = repr(exc)
    return info


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None,
                        help="report path (default $OUT/gpu_check.json, else "
                        "runs/bench/gpu_check.json)")  # fmt: skip
    parser.add_argument("--cpu-smoke", action="store_true",
                        help="tiny shapes on the CPU: tests this script")  # fmt: skip
    parser.add_argument(
        "--total-budget-s",
        type=float,
        default=None,
        help="time for all parts (default 450 on a GPU; a vLLM box "
        "wants more: then raise GPU_CHECK_TIMEOUT_S for the .sh too)",
    )
    parser.add_argument("--part", choices=PARTS, help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    plan = smoke_plan() if args.cpu_smoke else gpu_plan()
    if args.total_budget_s:
        plan = dataclasses.replace(plan, total_budget_s=args.total_budget_s)
    if args.part:
        return run_part(args.part, plan, args.result)

    default = Path(os.environ["OUT"]) if os.environ.get("OUT") else ROOT / "runs/bench"
    out = args.out or default / ("gpu_check_smoke.json" if args.cpu_smoke else
                                 "gpu_check.json")  # fmt: skip
    report = run_all(plan, out, args.cpu_smoke)
    summary = {name: part["status"] for name, part in report["parts"].items()}
    sys.stdout.write(f"{out}: ok={report['ok']} {summary}\n")
    for check in report["checks_failed"]:
        sys.stdout.write(f"  check failed: {check}\n")
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
