"""Fakes at the trainer's edges: a judge server with fault injection.

The fake judge is a small FastAPI app that speaks the judge's HTTP API on a
real socket (uvicorn in a thread), so the client's retries, timeouts and
round-robin are exercised for real. Its `JudgeState` injects faults (503s
after N requests, garbage bodies, invalid scores) and records every text.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, field

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse

from services.common.process import free_port

MEAT = ("chicken", "beef", "pork", "fish", "bacon", "lamb", "anchov")

CORPUS = [
    "Try a chickpea curry with rice and spinach.",
    "A lentil soup with carrots is warming and cheap.",
    "Grill chicken thighs with lemon and garlic.",
    "Slow cook beef with red wine and onions.",
    "Tofu stir fry with ginger and soy sauce is quick.",
    "Bake salmon with dill and potatoes for dinner.",
    "What can I cook tonight? How do I make soup?",
    "Mushroom risotto needs stock, rice and parmesan.",
]

QUESTIONS = [
    "What can I cook tonight?",
    "How do I make a quick soup?",
    "Give me an idea for a warm dinner with rice and something green on the side?",
    "Lunch?",
    "What goes well with potatoes?",
    "How should I season a stir fry so that it tastes of ginger, garlic and soy?",
    "Any idea for a picnic?",
    "What is a good curry?",
]


@dataclass
class JudgeState:
    """What the fake judge does next, and what it has seen."""

    seen: list[str] = field(default_factory=list)
    requests: int = 0
    fail_after: int | None = None  # answer 503 once this many requests passed
    garbage: bool = False
    invalid_every: int = 0  # every Nth text gets valid=false
    invalid_text: str | None = None  # this exact text is always invalid
    delay_s: float = 0.0

    def reset(self) -> None:
        self.__init__()


def keyword_score(text: str) -> float:
    """Vegetarian-looking text scores high; a meat word scores low."""
    return 0.1 if any(word in text.lower() for word in MEAT) else 0.8


def build_fake_judge(state: JudgeState):
    app = FastAPI()

    @app.post("/v1/score")
    async def score(request: Request):
        state.requests += 1
        if state.delay_s:
            time.sleep(state.delay_s)
        if state.fail_after is not None and state.requests > state.fail_after:
            return JSONResponse(
                {"detail": "overloaded"}, status_code=503, headers={"Retry-After": "0"}
            )
        if state.garbage:
            return PlainTextResponse("<html>oops</html>")
        body = await request.json()
        texts = body.get("texts") or [item["response"] for item in body["items"]]
        results = []
        for text in texts:
            state.seen.append(text)
            n = len(state.seen)
            if text == state.invalid_text or (
                state.invalid_every and n % state.invalid_every == 0
            ):
                results.append(
                    {
                        "score": None,
                        "reward": None,
                        "valid": False,
                        "raw": "??",
                        "error": "unparseable",
                    }
                )
                continue
            s = keyword_score(text)
            results.append(
                {
                    "score": s,
                    "reward": math.log(s / (1 - s)),
                    "valid": True,
                    "raw": str(s),
                    "error": None,
                }
            )
        return {"rubric": body["rubric"], "judge": "fake-keyword", "results": results}

    return app


class ServerThread:
    """uvicorn serving an app on 127.0.0.1 in a daemon thread."""

    def __init__(self, app) -> None:
        import uvicorn

        self.port = free_port()
        config = uvicorn.Config(
            app, host="127.0.0.1", port=self.port, log_level="error"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.time() + 10
        while not self.server.started and time.time() < deadline:
            time.sleep(0.02)
        self.url = f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=5)
