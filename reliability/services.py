"""Start the judge and the chat service as real subprocesses on loopback.

Each service runs the command a user runs (``rlaif judge serve``, ``rlaif
chat serve``) on a free 127.0.0.1 port, with its stdout and stderr in a
file so the security checks can search the logs for keys afterwards.
:class:`ServiceProcess` (on :mod:`services.common.process`) can be stopped
gently, killed with SIGKILL (the fault checks) and restarted on the same port.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml

from reliability import ServiceStartError
from services.common import process
from services.common.process import free_port

REPO_ROOT = Path(__file__).resolve().parents[1]
JUDGE_CONFIG = REPO_ROOT / "configs" / "judge" / "cpu.yaml"
TINY_CORPUS = [
    "How do I cook lentils? Simmer them with cumin, garlic and tomato.",
    "Try a chickpea curry with rice and spinach, or a bean chili.",
    "A tofu scramble with peppers and onions makes a quick breakfast.",
    "What can I cook tonight? A mushroom risotto with parmesan and thyme.",
]


class ServiceProcess(process.ServiceProcess):
    """A service with its API key, restartable on the same port and log."""

    def __init__(
        self,
        command: list[str],
        port: int,
        log_path: Path,
        *,
        env: dict[str, str] | None = None,
        api_key: str | None = None,
        startup_timeout: float = 180.0,
    ) -> None:
        super().__init__(
            command,
            port=port,
            log_path=log_path,
            name=" ".join(command[3:5]),
            env={"HF_HUB_OFFLINE": "1", **(env or {})},
            cwd=REPO_ROOT,
            startup_timeout=startup_timeout,
            stop_timeout=20.0,
            append_log=True,
        )
        self.api_key = api_key

    @property
    def headers(self) -> dict[str, str]:
        """The Authorization header clients with the key send."""
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}

    def wait_ready(self, timeout: float | None = None) -> None:
        try:
            super().wait_ready(timeout)
        except process.ServiceStartError as exc:
            raise ServiceStartError(str(exc)) from exc

    def kill9(self) -> None:
        """SIGKILL: no shutdown hook runs, buffered rows are lost."""
        self.kill()

    def rss_bytes(self) -> int:
        """Resident memory of the process, from /proc (Linux)."""
        status = Path(f"/proc/{self.pid}/status").read_text()
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        return 0


def judge_config(folder: Path, **sections: dict[str, Any]) -> Path:
    """The CPU judge config with ``sections`` merged in, written to ``folder``."""
    raw = yaml.safe_load(JUDGE_CONFIG.read_text(encoding="utf-8"))
    raw["rubrics_dir"] = str(REPO_ROOT / raw["rubrics_dir"])
    raw.setdefault("server", {})["log_dir"] = str(folder / "logs")
    for name, values in sections.items():
        raw.setdefault(name, {}).update(values)
    path = folder / "judge.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return path


def judge_process(
    folder: Path,
    *,
    api_key: str | None = None,
    port: int | None = None,
    **sections: dict[str, Any],
) -> ServiceProcess:
    """``rlaif judge serve`` with the CPU embedding backend (not started)."""
    folder.mkdir(parents=True, exist_ok=True)
    config = judge_config(folder, **sections)
    port = port or free_port()
    command = [sys.executable, "-m", "rlaif.cli", "judge", "serve"]
    command += ["--config", str(config), "--host", "127.0.0.1", "--port", str(port)]
    env = {"OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    env["RLAIF_JUDGE_API_KEY"] = api_key or ""
    return ServiceProcess(command, port, folder / "judge.log", env=env, api_key=api_key)


def build_tiny_base(folder: Path) -> Path:
    """A tiny Llama and tokenizer saved in ``folder`` (seconds on CPU)."""
    if (folder / "config.json").is_file():
        return folder
    import torch

    from rlaif.tiny_model import MICRO_SHAPE, save_tiny_llama

    torch.set_num_threads(1)
    save_tiny_llama(folder, TINY_CORPUS * 8, vocab_size=320, shape=MICRO_SHAPE)
    return folder


def chat_process(
    folder: Path,
    base: Path,
    *,
    api_key: str | None = None,
    **settings: Any,
) -> ServiceProcess:
    """``rlaif chat serve`` on the tiny base (not started)."""
    folder.mkdir(parents=True, exist_ok=True)
    values: dict[str, Any] = {
        "backend": "transformers",
        "device": "cpu",
        "dtype": "float32",
        "torch_threads": 1,
        "max_model_len": 512,
        "max_tokens_limit": 32,
        "default_max_tokens": 16,
        "max_pending_requests": 32,
        "log_flush_rows": 64,
        "log_flush_seconds": 1.0,
        **settings,
    }
    config = folder / "chat.yaml"
    config.write_text(yaml.safe_dump(values), encoding="utf-8")
    port = free_port()
    command = [sys.executable, "-m", "rlaif.cli", "chat", "serve"]
    command += ["--config", str(config), "--base", str(base)]
    command += ["--host", "127.0.0.1", "--port", str(port)]
    command += ["--log-dir", str(folder / "logs")]
    env = {"OMP_NUM_THREADS": "1", "RLAIF_CHAT_API_KEY": api_key or ""}
    return ServiceProcess(command, port, folder / "chat.log", env=env, api_key=api_key)
