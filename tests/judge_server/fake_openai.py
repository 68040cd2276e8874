"""A tiny OpenAI-compatible server for the openai backend's tests.

It implements the shapes of ``/v1/completions`` and ``/v1/chat/completions``
(with logprobs) that vLLM's server returns, and judges like a caricature:
a text mentioning chicken scores 0.1, a text saying "refuse" is refused,
everything else scores 0.9. Failures and a key check can be switched on.
"""

from __future__ import annotations

import math
import re

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

_CANDIDATE = re.compile(r"<text>(.*?)</text>", re.S)


def _candidate(prompt: str) -> str:
    found = _CANDIDATE.findall(prompt)
    return found[-1] if found else ""


def _verdict(prompt: str) -> str:
    text = _candidate(prompt).lower()
    if "refuse" in text:
        return "refuse"
    return "1" if "chicken" in text else "9"


def _top(digit: str) -> dict[str, float]:
    other = "8" if digit == "9" else "2"
    return {digit: math.log(0.8), other: math.log(0.15), " The": math.log(0.05)}


def build_fake_openai() -> FastAPI:
    app = FastAPI()
    app.state.fail_next = 0
    app.state.key = None
    app.state.calls = []

    def refuse_request(request: Request) -> JSONResponse | None:
        app.state.calls.append(request.url.path)
        if (
            app.state.key
            and request.headers.get("authorization") != f"Bearer {app.state.key}"
        ):
            return JSONResponse({"error": {"message": "bad key"}}, status_code=401)
        if app.state.fail_next > 0:
            app.state.fail_next -= 1
            return JSONResponse({"error": {"message": "overloaded"}}, status_code=503)
        return None

    @app.post("/v1/completions")
    async def completions(request: Request):
        refused = refuse_request(request)
        if refused:
            return refused
        body = await request.json()
        choices = []
        for index, prompt in enumerate(body["prompt"]):
            if len(prompt) > 6000:
                return JSONResponse(
                    {"error": {"message": "maximum context length is 2048 tokens"}},
                    status_code=400,
                )
            verdict = _verdict(prompt)
            if prompt.endswith("0."):  # logprob mode: one digit token
                digit = "5" if verdict == "refuse" else verdict
                top = _top(digit) if verdict != "refuse" else {" I": -0.05, "5": -3.0}
                choices.append(
                    {
                        "index": index,
                        "text": digit,
                        "finish_reason": "length",
                        "logprobs": {
                            "tokens": [digit],
                            "token_logprobs": [top.get(digit)],
                            "top_logprobs": [top],
                        },
                    }
                )
            else:
                text = {"refuse": " I cannot score this.", "1": " 0.1", "9": " 0.9"}[
                    verdict
                ]
                choices.append(
                    {
                        "index": index,
                        "text": text,
                        "finish_reason": "stop",
                        "logprobs": None,
                    }
                )
        return {
            "id": "cmpl-1",
            "object": "text_completion",
            "model": body["model"],
            "choices": choices,
        }

    @app.post("/v1/chat/completions")
    async def chat(request: Request):
        refused = refuse_request(request)
        if refused:
            return refused
        body = await request.json()
        verdict = _verdict(body["messages"][-1]["content"])
        if verdict == "refuse":
            content, tokens = "I cannot score this.", ["I", " cannot"]
        else:
            content, tokens = f"0.{verdict}5", ["0", ".", verdict, "5"]
        logprobs = None
        if body.get("logprobs"):
            logprobs = {
                "content": [
                    {
                        "token": t,
                        "logprob": -0.1,
                        "top_logprobs": [
                            {"token": k, "logprob": v}
                            for k, v in (
                                _top(t) if t in "19" and i == 2 else {t: -0.1}
                            ).items()
                        ],
                    }
                    for i, t in enumerate(tokens)
                ]
            }
        return {
            "id": "chat-1",
            "object": "chat.completion",
            "model": body["model"],
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "stop",
                    "logprobs": logprobs,
                    "message": {"role": "assistant", "content": content},
                }
            ],
        }

    return app
