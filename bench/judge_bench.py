"""Judge benchmarks for `make bench`.

1. Micro-batching: 64 concurrent single-text HTTP requests to a judge
   server (CPU default backend, in a subprocess on loopback) against one
   in-process backend call on the same 64 texts. The ratio of throughputs
   says how much of the batch speed the HTTP path keeps; goal >= 0.8.
2. Logprob vs text mode on a tiny random Llama (transformers backend):
   generated tokens per score and texts per second, side by side.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
N_TEXTS = 64


def _eval_texts(n: int) -> list[str]:
    rows = (ROOT / "data" / "judge_eval.jsonl").read_text().splitlines()
    return [json.loads(line)["text"] for line in rows[:n]]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _start_server(folder: Path) -> tuple[subprocess.Popen, str]:
    config = folder / "judge.yaml"
    base = (ROOT / "configs" / "judge" / "cpu.yaml").read_text()
    config.write_text(
        base.replace("log_dir: logs", f"log_dir: {folder}").replace(
            "rubrics_dir: configs/rubrics", f"rubrics_dir: {ROOT / 'configs/rubrics'}"
        )
    )
    port = _free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "rlaif.cli",
            "--log-level",
            "WARNING",
            "judge",
            "serve",
            "--config",
            str(config),
            "--port",
            str(port),
        ],
        cwd=ROOT,
        start_new_session=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    return process, f"http://127.0.0.1:{port}"


async def _concurrent_singles(url: str, texts: list[str]) -> float:
    import httpx

    limits = httpx.Limits(max_connections=len(texts))
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as client:
        deadline = time.monotonic() + 180
        while True:  # wait for readiness
            try:
                if (await client.get("/readyz")).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("judge server did not become ready")
            await asyncio.sleep(0.5)

        async def one(text: str) -> None:
            response = await client.post("/v1/score", json={"texts": [text]})
            response.raise_for_status()

        await asyncio.gather(*(one(t) for t in texts))  # warm-up, fills caches
        started = time.perf_counter()
        await asyncio.gather(*(one(t) for t in texts))
        return time.perf_counter() - started


def _batch_in_process(texts: list[str], repeats: int) -> float:
    from judge_server.backends.base import JudgeRequest
    from judge_server.backends.embedding import EmbeddingBackend
    from judge_server.config import EmbeddingConfig
    from judge_server.rubrics import load_rubrics

    rubrics = load_rubrics(ROOT / "configs" / "rubrics")
    backend = EmbeddingBackend(EmbeddingConfig())
    asyncio.run(backend.start(rubrics))
    batch = [JudgeRequest(rubrics["vegetarian"], t) for t in texts]
    backend.judge_sync(batch)  # warm-up
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        backend.judge_sync(batch)
        best = min(best, time.perf_counter() - started)
    return best


def micro_batching_rows(quick: bool) -> list[dict]:
    texts = _eval_texts(N_TEXTS)
    repeats = 2 if quick else 5
    with tempfile.TemporaryDirectory(prefix="judge-bench-") as folder:
        process, url = _start_server(Path(folder))
        try:
            batch_s = _batch_in_process(texts, repeats)
            http_s = min(
                asyncio.run(_concurrent_singles(url, texts)) for _ in range(repeats)
            )
        finally:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=30)
    ratio = batch_s / http_s
    return [
        _row(
            "judge/micro-batching",
            "batch call, texts/s",
            N_TEXTS / batch_s,
            "texts/s",
            "",
            f"one in-process call on {N_TEXTS} texts (embedding judge)",
        ),
        _row(
            "judge/micro-batching",
            "64 concurrent requests, texts/s",
            N_TEXTS / http_s,
            "texts/s",
            "",
            "one text per HTTP request, micro-batched by the server",
        ),
        _row(
            "judge/micro-batching",
            "HTTP / batch throughput",
            ratio,
            "ratio",
            ">= 0.8",
            "same 64 texts, same machine, same run",
        ),
    ]


def mode_rows(quick: bool) -> list[dict]:
    from judge_server.backends.base import JudgeRequest
    from judge_server.backends.transformers_backend import TransformersBackend
    from judge_server.config import TransformersConfig
    from judge_server.rubrics import load_rubrics
    from rlaif.tiny_model import TinyLlamaShape, init_tiny_llama, train_tokenizer

    rubrics = load_rubrics(ROOT / "configs" / "rubrics")
    texts = _eval_texts(8 if quick else 32)
    tokenizer = train_tokenizer(texts * 4, vocab_size=512)
    tokenizer.model_max_length = 4096
    shape = TinyLlamaShape(max_position_embeddings=4096)
    model = init_tiny_llama(tokenizer, shape, seed=0)
    rows = []
    with tempfile.TemporaryDirectory(prefix="judge-bench-tiny-") as folder:
        model.save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        batch = [JudgeRequest(rubrics["vegetarian"], t) for t in texts]
        for mode in ("logprob", "text"):
            config = TransformersConfig(
                model_path=Path(folder), mode=mode, max_new_tokens=6, min_score_mass=0.0
            )
            backend = TransformersBackend(config)
            asyncio.run(backend.start(rubrics))
            backend.judge_sync(batch[:2])  # warm-up
            started = time.perf_counter()
            outcomes = backend.judge_sync(batch)
            seconds = time.perf_counter() - started
            tokens = sum(o.generated_tokens for o in outcomes) / len(outcomes)
            rows.append(
                _row(
                    "judge/score-mode",
                    f"{mode}: generated tokens per score",
                    tokens,
                    "tokens",
                    "",
                    "tiny random Llama, CPU",
                )
            )
            rows.append(
                _row(
                    "judge/score-mode",
                    f"{mode}: texts/s",
                    len(batch) / seconds,
                    "texts/s",
                    "",
                    f"{len(batch)} texts in one batch",
                )
            )
    return rows


def _row(group, name, value, unit, goal, note) -> dict:
    return {
        "group": group,
        "name": name,
        "value": value,
        "unit": unit,
        "goal": goal,
        "note": note,
    }


def run(quick: bool) -> list[dict]:
    return micro_batching_rows(quick) + mode_rows(quick)


if __name__ == "__main__":
    from bench.run import render

    sys.stdout.write(render(run(quick="--quick" in sys.argv)) + "\n")
