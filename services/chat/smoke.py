"""Start the chat service, ask one question over HTTP, stop it.

The demo's last stage uses :func:`ask_once` to show that the tuned adapter
answers through the real service: the same command a user runs, as a
subprocess on a free loopback port, reached with a real HTTP client.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import IO

import httpx

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CONFIG = REPO_ROOT / "configs" / "chat" / "cpu.yaml"


class SmokeError(RuntimeError):
    """The service did not start or did not answer; the message has its log."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    env.pop("RLAIF_CHAT_API_KEY", None)

    with tempfile.TemporaryFile() as server_log:
        server = subprocess.Popen(
            command, stdout=server_log, stderr=subprocess.STDOUT, env=env
        )
        try:
            url = f"http://127.0.0.1:{port}"
            _wait_ready(url, server, server_log, startup_timeout)
            return _ask(url, question, max_tokens)
        finally:
            server.terminate()
            try:
                server.wait(timeout=15)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()


def _wait_ready(
    url: str, server: subprocess.Popen[bytes], log: IO[bytes], timeout: float
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SmokeError(
                f"the chat service exited with status {server.returncode}:\n"
                f"{_tail(log)}"
            )
        try:
            if httpx.get(f"{url}/readyz", timeout=2.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.25)
    raise SmokeError(f"the chat service was not ready after {timeout}s:\n{_tail(log)}")


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


def _tail(log: IO[bytes], size: int = 4000) -> str:
    log.seek(0)
    return log.read().decode("utf-8", "replace")[-size:]
