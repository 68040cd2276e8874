"""The LLM question source against a real local HTTP server with messy replies."""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from rlaif.prompt_sources import (
    LLMQuestionSource,
    LLMReplyError,
    TopicsFileError,
    extract_question,
    load_topics,
)

REPLIES = [
    ('{"question": "How do I press tofu?"}', "How do I press tofu?"),
    ('```json\n{"question": "What goes in a dal?"}\n```', "What goes in a dal?"),
    (
        'Sure! Here is one:\n{"question": "Which beans suit a chili?"}\nEnjoy.',
        "Which beans suit a chili?",
    ),
    ('```\n{"question":"Is seitan high in protein?"}```', "Is seitan high in protein?"),
    ('[{"question": "How long do lentils take?"}]', "How long do lentils take?"),
    (
        '{"question": "What is a \\"Buddha bowl\\"?", "topic": "bowls"}',
        'What is a "Buddha bowl"?',
    ),
    ('Note {not json} then {"question": "Can I freeze pesto?"}', "Can I freeze pesto?"),
    ('{"question": "Why soak chickpeas?", }', "Why soak chickpeas?"),
    ('{"question": "  Spaces\n inside  ?"}', "Spaces inside ?"),
]
BAD_REPLIES = [
    "I cannot help with that.",
    '{"answer": "tofu"}',
    '{"question": ""}',
    "",
    "```json\n{}\n```",
]


@pytest.mark.parametrize(("reply", "question"), REPLIES)
def test_extract_question_reads_json_in_its_common_wrappings(reply, question):
    assert extract_question(reply) == question


@pytest.mark.parametrize("reply", BAD_REPLIES)
def test_extract_question_refuses_replies_without_a_question(reply):
    with pytest.raises(LLMReplyError):
        extract_question(reply)


def test_load_topics_skips_comments_and_rejects_an_empty_file(tmp_path):
    path = tmp_path / "topics.txt"
    path.write_text("# comment\n\nbaking\n grilling \n")
    assert load_topics(path) == ["baking", "grilling"]
    path.write_text("# only a comment\n")
    with pytest.raises(TopicsFileError, match="no topic"):
        load_topics(path)


class MessyLLM:
    """An OpenAI-compatible chat endpoint whose replies go wrong in turn.

    Every fourth request fails with a 500, the next one answers prose with
    no JSON; the others answer a unique question in a rotating wrapping.
    """

    def __init__(self):
        self.counter = itertools.count()
        self.lock = threading.Lock()
        self.bodies: list[dict] = []

    def reply(self, body: dict) -> tuple[int, str]:
        with self.lock:
            number = next(self.counter)
            self.bodies.append(body)
        if number % 4 == 1:
            return 500, "upstream overloaded"
        if number % 4 == 2:
            return 200, "Sorry, I can only chat about the weather."
        question = f"What is recipe number {number} for a tofu {number % 7} bowl?"
        wrappings = [
            json.dumps({"question": question}),
            "```json\n" + json.dumps({"question": question}) + "\n```",
            "Here you go: " + json.dumps({"question": question}) + " Thanks!",
        ]
        return 200, wrappings[number % 3]


@pytest.fixture
def messy_llm():
    llm = MessyLLM()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            status, content = llm.reply(body)
            if status == 200:
                payload = {"choices": [{"message": {"content": content}}]}
                data = json.dumps(payload).encode()
            else:
                data = content.encode()
            self.send_response(status)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    llm.url = f"http://127.0.0.1:{server.server_address[1]}"
    yield llm
    server.shutdown()
    server.server_close()


def _source(llm, **kwargs) -> LLMQuestionSource:
    return LLMQuestionSource(
        base_url=llm.url,
        model="messy-7b",
        topics=["baking", "grilling", "meal prep", "street food"],
        backoff_initial_s=0.01,
        backoff_max_s=0.02,
        **kwargs,
    )


def test_llm_source_retries_messy_replies_and_counts_failures(messy_llm):
    # One request at a time: never more than two failures in a row.
    source = _source(messy_llm, max_concurrency=1)
    questions = asyncio.run(source.generate(8))
    stats = source.stats.as_dict()

    assert len(questions) == 8
    assert all(q.startswith("What is recipe number") for q in questions)
    assert stats["http_failures"] >= 1 and stats["parse_failures"] >= 1
    assert stats["retries"] == stats["http_failures"] + stats["parse_failures"]
    assert stats["gave_up"] == 0
    assert stats["requests"] == len(messy_llm.bodies)
    body = messy_llm.bodies[0]
    assert body["model"] == "messy-7b"
    assert "JSON" in body["messages"][0]["content"]


def test_llm_source_gives_up_after_its_attempts_and_says_so(messy_llm):
    source = _source(messy_llm, attempts=1, max_concurrency=1)
    questions = asyncio.run(source.generate(8))
    assert len(questions) == 4  # requests 1 and 2 of every 4 fail
    assert source.stats.gave_up == 4


def test_prompts_generate_with_the_llm_source_writes_both_files(messy_llm, tmp_path):
    from rlaif.cli import main

    topics = tmp_path / "topics.txt"
    topics.write_text("baking\ngrilling\nmeal prep\n")
    out = tmp_path / "llm"
    argv = ["prompts", "generate", "--source", "llm", "--llm-url", messy_llm.url]
    argv += ["--llm-model", "messy-7b", "--topics", str(topics), "--seed", "3"]
    argv += ["--n-train", "10", "--n-holdout", "4", "--out-dir", str(out)]
    assert main(argv) == 0
    train = (out / "train.txt").read_text().splitlines()
    holdout = (out / "holdout.txt").read_text().splitlines()
    assert (len(train), len(holdout)) == (10, 4)
    assert not set(train) & set(holdout)
    stats = json.loads((out / "stats.json").read_text())
    assert stats["source"] == "llm"
    assert stats["source_stats"]["parse_failures"] >= 1
