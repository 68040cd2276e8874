"""Chat service throughput: tokens/s through HTTP vs the bare backend.

The same tiny Llama generates the same greedy tokens for the same prompt
two ways, alternating round by round: directly through the transformers
backend in this process (no HTTP, no serving layer), and through
``rlaif chat serve`` in a subprocess, streamed and plain, with a real HTTP
client. The ratio says what the service layer costs (goal >= 0.9).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

PROMPT = "Suggest a vegetarian dinner with lentils and spinach."
CORPUS = [
    "Try a chickpea curry with rice and spinach.",
    "Simmer lentils with cumin, garlic and tomato for a warming soup.",
    "Roast cauliflower with tahini, lemon and parsley.",
    "A black bean chili with peppers and corn feeds four.",
]


def run(quick: bool) -> list[dict]:
    rounds, max_tokens = (3, 96) if quick else (12, 256)
    rounds = int(os.environ.get("CHAT_BENCH_ROUNDS", rounds))
    with tempfile.TemporaryDirectory(prefix="chat-bench-") as tmp:
        base = _build_model(Path(tmp) / "base")
        config = Path(tmp) / "chat.yaml"
        config.write_text(
            f"base: {base}\ntorch_threads: 1\nlog_dir: {Path(tmp) / 'logs'}\n"
            f"max_tokens_limit: {max_tokens}\ndefault_max_tokens: {max_tokens}\n"
        )
        return asyncio.run(_measure(base, config, rounds, max_tokens))


def _build_model(folder: Path) -> Path:
    """A tiny Llama whose greedy output cycles through 64 tokens, never EOS.

    Its decoder layers' output projections are zeroed and the embedding and
    head encode "after token a comes b" around a cycle: every request runs
    to max_tokens on both sides, with the compute of an ordinary model of
    this shape (dense matmuls do not care that weights are zero).
    """
    import torch

    from rlaif.tiny_model import init_tiny_llama, train_tokenizer

    tokenizer = train_tokenizer(CORPUS * 4, vocab_size=400)
    model = init_tiny_llama(tokenizer, seed=0)
    cycle = list(range(len(tokenizer) - 64, len(tokenizer)))
    newline = tokenizer.encode("\n", add_special_tokens=False)[0]
    with torch.no_grad():
        for layer in model.model.layers:
            layer.self_attn.o_proj.weight.zero_()
            layer.mlp.down_proj.weight.zero_()
        model.lm_head.weight.zero_()
        embed = model.model.embed_tokens.weight
        chain = [newline, *cycle]
        successors = [*cycle, cycle[0]]
        for dim, (token, successor) in enumerate(zip(chain, successors, strict=True)):
            embed[token].zero_()
            embed[token, dim] = 1.0
            model.lm_head.weight[successor, dim] = 10.0
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


async def _measure(
    base: Path, config: Path, rounds: int, max_tokens: int
) -> list[dict]:
    from services.chat.smoke import free_port

    # Both sides run in fresh child processes set up alike, so neither
    # inherits this process's threads and memory (tokenizer training).
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    bare = subprocess.Popen(
        [sys.executable, "-m", "bench.chat_bench", "--bare-worker", str(base)],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "rlaif.cli", "--log-level", "WARNING", "chat", "serve"]
        + ["--config", str(config), "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    # Per round and side: (tokens, seconds). Sides of one round run back to
    # back, so their ratio is measured under the same machine load.
    rounds_log: list[dict[str, tuple[int, float]]] = []
    try:
        async with httpx.AsyncClient(base_url=url, timeout=300) as client:
            await _wait_ready(client, server)
            await _plain(client, 4)  # warm-up both sides
            _ask_bare(bare, 4)
            for round_ in range(rounds):
                rounds_log.append({})
                # Rotate the order so that no side always goes first.
                for name in _rotated(("bare", "stream", "plain"), round_):
                    if name == "bare":
                        tokens, seconds = _ask_bare(bare, max_tokens)
                    else:
                        started = time.perf_counter()
                        measure = _stream if name == "stream" else _plain
                        tokens = await measure(client, max_tokens)
                        seconds = time.perf_counter() - started
                    rounds_log[-1][name] = (tokens, seconds)
    finally:
        server.terminate()
        bare.stdin.close()  # type: ignore[union-attr]
        server.wait(timeout=30)
        bare.wait(timeout=30)
    return _rows(rounds_log, max_tokens)


def _rotated(names: tuple[str, ...], by: int) -> tuple[str, ...]:
    by %= len(names)
    return names[by:] + names[:by]


def _ask_bare(worker: subprocess.Popen, max_tokens: int) -> tuple[int, float]:
    worker.stdin.write(f"{max_tokens}\n")  # type: ignore[union-attr]
    worker.stdin.flush()  # type: ignore[union-attr]
    tokens, seconds = worker.stdout.readline().split()  # type: ignore[union-attr]
    return int(tokens), float(seconds)


def bare_worker(base: Path) -> None:
    """Child process: generate max_tokens per stdin line, report the time."""

    async def serve() -> None:
        backend, prompt_ids = await _bare_backend(base)
        for line in sys.stdin:
            started = time.perf_counter()
            tokens = await _bare(backend, prompt_ids, int(line))
            sys.stdout.write(f"{tokens} {time.perf_counter() - started}\n")
            sys.stdout.flush()
        await backend.close()

    asyncio.run(serve())


def _rows(
    rounds_log: list[dict[str, tuple[int, float]]], max_tokens: int
) -> list[dict]:
    """Rows from per-round timings: the ratio is the median of per-round ratios.

    On a shared machine one round can be slowed by another job; a median of
    paired ratios shrugs that off where a ratio of totals would not.
    """
    import statistics

    def rate(round_: dict, name: str) -> float:
        tokens, seconds = round_[name]
        return tokens / seconds

    counts = {name: sum(r[name][0] for r in rounds_log) for name in rounds_log[0]}
    note = (
        f"{len(rounds_log)} rounds x {max_tokens} greedy tokens, tiny Llama, "
        "1 torch thread"
    )
    note += "" if len(set(counts.values())) == 1 else f"; token counts differ: {counts}"
    rows = [
        {
            "group": "chat",
            "name": "bare backend tokens/s",
            "value": statistics.median(rate(r, "bare") for r in rounds_log),
            "unit": "tokens/s",
            "goal": "",
            "note": f"median over rounds; {note}",
        }
    ]
    for name in ("stream", "plain"):
        ratios = [rate(r, name) / rate(r, "bare") for r in rounds_log]
        speed = statistics.median(rate(r, name) for r in rounds_log)
        rows.append(
            {
                "group": "chat",
                "name": f"service ({name}) / bare backend tokens/s",
                "value": statistics.median(ratios),
                "unit": "ratio",
                "goal": ">= 0.9",
                "note": f"median of per-round ratios (range {min(ratios):.2f}-"
                f"{max(ratios):.2f}), {speed:.0f} tokens/s over HTTP, {note}",
            }
        )
    return rows


async def _bare_backend(base: Path):
    from services.chat.adapters import AdapterRegistry
    from services.chat.backends.transformers_backend import TransformersBackend
    from services.chat.protocol import ChatMessage
    from services.chat.serving import encode_chat

    backend = TransformersBackend(base, AdapterRegistry("base", 1), torch_threads=1)
    await backend.start({})
    messages = [ChatMessage(role="user", content=PROMPT)]
    return backend, encode_chat(backend.tokenizer, messages)


async def _bare(backend, prompt_ids: list[int], max_tokens: int) -> int:
    from services.chat.backends.base import GenerationRequest, SamplingSettings

    request = GenerationRequest(
        request_id="bench",
        prompt_ids=prompt_ids,
        adapter=None,
        sampling=SamplingSettings(max_tokens=max_tokens, temperature=0.0),
    )
    return sum([delta.num_tokens async for delta in backend.generate(request)])


def _body(max_tokens: int, stream: bool) -> dict:
    return {
        "model": "base",
        "messages": [{"role": "user", "content": PROMPT}],
        "temperature": 0,
        "max_tokens": max_tokens,
        "stream": stream,
        "stream_options": {"include_usage": True} if stream else None,
    }


async def _plain(client: httpx.AsyncClient, max_tokens: int) -> int:
    response = await client.post("/v1/chat/completions", json=_body(max_tokens, False))
    response.raise_for_status()
    return int(response.json()["usage"]["completion_tokens"])


async def _stream(client: httpx.AsyncClient, max_tokens: int) -> int:
    import json

    tokens = 0
    body = _body(max_tokens, True)
    async with client.stream("POST", "/v1/chat/completions", json=body) as response:
        async for line in response.aiter_lines():
            if line.startswith("data: {"):
                usage = json.loads(line[6:]).get("usage")
                tokens = usage["completion_tokens"] if usage else tokens
    return tokens


async def _wait_ready(client: httpx.AsyncClient, server: subprocess.Popen) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"chat service exited with {server.returncode}")
        try:
            if (await client.get("/readyz")).status_code == 200:
                return
        except httpx.TransportError:
            pass
        await asyncio.sleep(0.25)
    raise RuntimeError("chat service not ready after 120s")


if __name__ == "__main__":
    if "--bare-worker" in sys.argv:
        bare_worker(Path(sys.argv[sys.argv.index("--bare-worker") + 1]))
    else:
        for row in run(quick="--quick" in sys.argv):
            print(row)
