"""Start the chat service, ask one question over HTTP, stop it.

The demo's last stage uses :func:`ask_once` to show that the tuned adapter
answers through the real service: the same command a user runs, as a
subprocess on a free loopback port, reached with a real HTTP client.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import httpx

from services.common.process import ServiceProcess, ServiceStartError, free_port

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CONFIG = REPO_ROOT / "configs" / "chat" / "cpu.yaml"


class SmokeError(RuntimeError):
    """The service did not start or did not answer; the message has its log."""


def ask_once(
    base_dir: Path,
    adapter_dir: Path,
    question: str,
    *,
    config: Path | None = None,
    max_tokens: int = 96,
    startup_timeout: float = 120.0,
    log_dir: Path | None = None,
) -> str:
    """The adapter's greedy answer to ``question``, fetched over HTTP."""
    port = free_port()
    config = config or (DEFAULT_CONFIG if DEFAULT_CONFIG.is_file() else None)
    command = [sys.executable, "-m", "rlaif.cli", "chat", "serve"]
    command += ["--base", str(base_dir), "--adapter", f"tuned={adapter_dir}"]
    command += ["--host", "127.0.0.1", "--port", str(port)]
    if config is not None:
        command += ["--config", str(config)]
    if log_dir is not None:
        command += ["--log-dir", str(log_dir)]
    # The key is dropped: this client sends none.
    env = {"HF_HUB_OFFLINE": "1", "RLAIF_CHAT_API_KEY": None}

    with tempfile.TemporaryDirectory() as scratch:
        server = ServiceProcess(
            command,
            port=port,
            log_path=Path(scratch) / "chat.log",
            name="the chat service",
            env=env,
            startup_timeout=startup_timeout,
        )
        try:
            server.start()
        except ServiceStartError as exc:
            raise SmokeError(str(exc)) from exc
        try:
            return _ask(server.url, question, max_tokens)
        finally:
            server.stop()


def _ask(url: str, question: str, max_tokens: int) -> str:
    response = httpx.post(
        f"{url}/v1/chat/completions",
        json={
            "model": "tuned",
            "messages": [{"role": "user", "content": question}],
            "temperature": 0,
            "max_tokens": max_tokens,
        },
        timeout=120.0,
    )
    if response.status_code != 200:
        raise SmokeError(
            f"the chat service answered {response.status_code}: {response.text}"
        )
    return str(response.json()["choices"][0]["message"]["content"])
