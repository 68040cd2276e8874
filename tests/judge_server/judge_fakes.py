"""A scripted judge backend: canned replies through the real parser."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Iterator, Sequence

from judge_server.backends.base import JudgeBackend, JudgeRequest
from judge_server.errors import TextTooLongError
from judge_server.parsing import parse_score
from judge_server.scores import JudgeOutcome


class ScriptedBackend(JudgeBackend):
    """Replies with ``replies[text]`` (default "0.9"), like an LLM judge would."""

    model_name = "scripted-judge"
    mode = "text"

    def __init__(
        self,
        replies: dict[str, str] | None = None,
        context_chars: int = 10_000,
        gate: asyncio.Event | None = None,
    ) -> None:
        self.replies = replies or {}
        self.context_chars = context_chars
        self.gate = gate
        self.batches: list[int] = []

    def check_fits(self, request: JudgeRequest) -> None:
        if len(request.text) > self.context_chars:
            raise TextTooLongError(
                f"the prompt exceeds the judge's context of {self.context_chars}"
            )

    async def judge(self, batch: Sequence[JudgeRequest]) -> list[JudgeOutcome]:
        if self.gate is not None:
            await self.gate.wait()
        self.batches.append(len(batch))
        return [parse_score(self.replies.get(r.text, "0.9"), tokens=2) for r in batch]


@contextlib.contextmanager
def serve_in_thread(app) -> Iterator[str]:
    """Run ``app`` on a free loopback port in a thread; yield its base URL."""
    import uvicorn

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("test server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
