"""Session fixtures: the real judge and chat service, keyed, on loopback.

Both run as subprocesses with the commands users run. The judge's queue is
small (64 texts) so a short burst already crosses the bound, and both
services flush their request logs every half second so a test can read the
Parquet files while they run.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # `reliability` is a folder of scripts
    sys.path.insert(0, str(REPO))

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from reliability_constants import (  # noqa: E402
    BODY_LIMIT,
    CHAT_KEY,
    FLUSH_ROWS,
    JUDGE_KEY,
    JUDGE_QUEUE,
)

from reliability.services import (  # noqa: E402
    ServiceProcess,
    build_tiny_base,
    chat_process,
    judge_process,
)


@pytest.fixture(scope="session")
def tiny_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_base(tmp_path_factory.mktemp("reliability") / "base")


@pytest.fixture(scope="session")
def judge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    folder = tmp_path_factory.mktemp("judge")
    service = judge_process(
        folder,
        api_key=JUDGE_KEY,
        server={"max_body_bytes": BODY_LIMIT},
        batching={"max_queue": JUDGE_QUEUE},
        limits={"max_texts_per_request": 32},
        request_log={"flush_rows": FLUSH_ROWS, "flush_seconds": 0.5},
    )
    with service:
        yield service


@pytest.fixture(scope="session")
def chat(tiny_base: Path, tmp_path_factory) -> Iterator[ServiceProcess]:
    folder = tmp_path_factory.mktemp("chat")
    service = chat_process(
        folder,
        tiny_base,
        api_key=CHAT_KEY,
        max_body_bytes=BODY_LIMIT,
        log_flush_rows=FLUSH_ROWS,
        log_flush_seconds=0.5,
    )
    with service:
        yield service
