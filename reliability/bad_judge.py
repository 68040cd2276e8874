"""The trainer's judge client against judges that misbehave.

A small fake judge on loopback answers in one bad way per mode: too slowly
(past the client's timeout), with an HTML page instead of JSON, with scores
outside (0, 1) or NaN, or marked invalid. The trainer's own
:class:`trainer.judge_client.JudgeClient` must turn each into its policy,
never into a crash or a score: a JudgeUnavailableError after the allowed
downtime for a judge that cannot answer, invalid results for replies that
are not scores.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse, Response

from reliability.services import free_port

JSON = "application/json"
MODES = ("slow", "garbage", "out_of_range", "invalid")


@dataclass
class BadJudgeReport:
    mode: str
    outcome: str
    seconds: float
    valid_results: int
    invalid_results: int
    problems: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _fake_app(mode: str, slow_s: float) -> FastAPI:
    app = FastAPI()

    @app.post("/v1/score")
    async def score(request: Request) -> Any:
        body = await request.json()
        texts = body.get("texts") or [i["response"] for i in body["items"]]
        if mode == "slow":
            await asyncio.sleep(slow_s)
        if mode == "garbage":
            return PlainTextResponse("<html>502 bad gateway</html>")
        if mode == "out_of_range":
            values = [1.5, float("nan"), -0.2, 0.0]
            results = [
                {"score": values[i % 4], "reward": 1.0, "valid": True, "raw": "?"}
                for i in range(len(texts))
            ]
            # json.dumps writes NaN as the bare token some servers emit.
            return Response(json.dumps({"results": results}), media_type=JSON)
        results = [
            {
                "score": None,
                "reward": None,
                "valid": False,
                "raw": "I cannot",
                "error": "x",
            }
            for _ in texts
        ]
        return {"rubric": "vegetarian", "judge": "fake", "results": results}

    return app


class _Server:
    def __init__(self, app: Any) -> None:
        import uvicorn

        self.port = free_port()
        config = uvicorn.Config(
            app, host="127.0.0.1", port=self.port, log_level="critical"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started and time.monotonic() < deadline:
            time.sleep(0.02)
        return f"http://127.0.0.1:{self.port}"

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def run_bad_judge(
    mode: str, *, timeout_s: float = 0.5, downtime_s: float = 2.0
) -> BadJudgeReport:
    """Score 8 texts through a judge that misbehaves as ``mode``."""
    from trainer.errors import JudgeUnavailableError
    from trainer.judge_client import JudgeClient

    texts = [f"try a lentil stew, variant {i}" for i in range(8)]
    with _Server(_fake_app(mode, slow_s=timeout_s * 4)) as url:
        client = JudgeClient(
            [url],
            "vegetarian",
            timeout_s=timeout_s,
            max_downtime_s=downtime_s,
            retry_initial_s=0.05,
            retry_max_s=0.2,
        )
        started = time.perf_counter()
        results: list[Any] = []
        try:
            results = client.score_sync(texts)
            outcome = "results"
        except JudgeUnavailableError as exc:
            outcome = f"JudgeUnavailableError: {str(exc)[:80]}"
        finally:
            client.close()
        seconds = time.perf_counter() - started
    valid = sum(r.valid for r in results)
    report = BadJudgeReport(
        mode, outcome, round(seconds, 2), valid, len(results) - valid
    )
    if valid:
        report.problems.append(f"{valid} results from a {mode} judge counted as valid")
    if mode in ("slow", "garbage") and not outcome.startswith("JudgeUnavailable"):
        report.problems.append(f"a {mode} judge did not stop the client: {outcome}")
    if seconds > downtime_s + 10 * timeout_s + 5:
        report.problems.append(f"the client took {seconds:.1f}s, past its downtime")
    return report


def run_all(**kwargs: Any) -> list[BadJudgeReport]:
    return [run_bad_judge(mode, **kwargs) for mode in MODES]
