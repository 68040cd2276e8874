"""Fixtures for the pipeline stages: a tiny bootstrapped policy, a fake judge.

The fake judge is a real HTTP server on loopback that speaks the judge API
(`POST /v1/score`) and scores by a keyword rule of its own, so the
evaluation's HTTP path, ordering and metrics are exercised for real without
loading the embedding judge.
"""

from __future__ import annotations

import json
import math
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from keyword_judge import keyword_score

REPO = Path(__file__).resolve().parents[2]


class _FakeJudge(BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802 - http.server naming
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        texts = body.get("texts") or [item["response"] for item in body["items"]]
        results = []
        for text in texts:
            score = keyword_score(text)
            results.append(
                {
                    "score": score,
                    "reward": math.log(score / (1 - score)),
                    "valid": True,
                    "raw": f"keyword rule: {score}",
                    "error": None,
                }
            )
        payload = json.dumps(
            {"rubric": body["rubric"], "judge": "fake-keyword", "results": results}
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):  # keep test output quiet
        pass


@pytest.fixture(scope="session")
def fake_judge_url():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FakeJudge)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="session")
def tiny_policy(tmp_path_factory) -> Path:
    """A bootstrapped policy small enough to train in a few seconds."""
    import torch

    from rlaif.bootstrap import BootstrapSettings, bootstrap

    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("policy") / "base"
    settings = BootstrapSettings(
        vocab_size=400,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        steps=30,
        batch_size=16,
        warmup_steps=5,
        max_examples=200,
    )
    bootstrap(REPO / "data" / "food_qa.jsonl", out, settings, progress=False)
    return out


@pytest.fixture(scope="session")
def tiny_adapter(tiny_policy, tmp_path_factory) -> Path:
    """A LoRA adapter with non-zero weights, so tuned differs from base."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(tiny_policy)
    config = LoraConfig(
        r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False
    )
    peft_model = get_peft_model(model, config)
    out = tmp_path_factory.mktemp("adapter") / "ppo"
    peft_model.save_pretrained(out)
    return out
