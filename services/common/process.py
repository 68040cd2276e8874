"""Run a service as a child process on a loopback port, until it is ready.

The tests, the demo and the reliability checks start services the way a
user does (``rlaif judge serve``, ``rlaif chat serve``, Prometheus) and all
need the same steps: pick a free port, start the command with its output in
a log file, wait until a readiness URL answers 200, and stop it: SIGTERM
first, so the service flushes its request log, SIGKILL if it hangs.
:class:`ServiceProcess` does these steps; when the service exits or is not
ready in time, :class:`ServiceStartError` carries the end of its log, which
is where the reason is.

``free_port`` has a race (another process may take the port before the
service binds it); on a test machine's loopback that is rare enough.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import httpx

LOOPBACK = "127.0.0.1"
READY_POLL_S = 0.25


class ServiceStartError(RuntimeError):
    """The service exited or was not ready in time; the message has its log.

    ``returncode`` is the exit status, or None when it was still running
    (and has been stopped) at the deadline.
    """

    def __init__(self, message: str, *, returncode: int | None, log_path: Path):
        super().__init__(message)
        self.returncode = returncode
        self.log_path = log_path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


class ServiceProcess:
    """``command`` serving on ``127.0.0.1:port``; a context manager.

    ``env`` is merged over this process's environment; a value of None
    removes that variable (a key the child must not inherit). stdout and
    stderr go to ``log_path``, truncated on the first start unless
    ``append_log``; a restart of the same object always appends, so a log
    read after a SIGKILL and restart holds both runs. ``own_process_group``
    starts the child in a new session and signals its whole group, for
    commands that start children of their own.
    """

    def __init__(
        self,
        command: Sequence[str],
        *,
        port: int,
        log_path: Path,
        name: str | None = None,
        ready_path: str = "/readyz",
        env: Mapping[str, str | None] | None = None,
        cwd: Path | None = None,
        startup_timeout: float = 180.0,
        stop_timeout: float = 15.0,
        append_log: bool = False,
        own_process_group: bool = False,
    ) -> None:
        self.command = list(command)
        self.port = port
        self.url = f"http://{LOOPBACK}:{port}"
        self.ready_url = self.url + ready_path
        self.log_path = log_path
        self.name = name or Path(self.command[0]).name
        self.env = _child_env(env or {})
        self.cwd = cwd
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        self.append_log = append_log
        self.own_process_group = own_process_group
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None, f"{self.name} was never started"
        return self.process.pid

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def launch(self) -> ServiceProcess:
        """Start the process without waiting, so several can boot side by side."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        mode = "ab" if self.append_log or self.process is not None else "wb"
        with self.log_path.open(mode) as log:  # the child keeps its own handle
            self.process = subprocess.Popen(
                self.command,
                cwd=self.cwd,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=self.own_process_group,
            )
        return self

    def wait_ready(self, timeout: float | None = None) -> None:
        """Poll ``ready_url`` until it answers 200; stop and raise otherwise."""
        assert self.process is not None, f"{self.name} was never started"
        timeout = self.startup_timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise self._start_error(
                    f"exited with status {self.process.returncode} before it was ready"
                )
            try:
                if httpx.get(self.ready_url, timeout=2.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass  # not listening yet
            time.sleep(READY_POLL_S)
        self.stop()
        raise self._start_error(
            f"was not ready at {self.ready_url} after {timeout:.0f}s", timed_out=True
        )

    def start(self) -> ServiceProcess:
        """Launch and wait until ready; the process is stopped if that fails."""
        self.launch()
        try:
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """SIGTERM, so the service flushes its logs; SIGKILL after the timeout."""
        if not self.running():
            return
        self._signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=self.stop_timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        """SIGKILL: no shutdown hook runs, buffered rows are lost."""
        if not self.running():
            return
        self._signal(signal.SIGKILL)
        self.process.wait(timeout=self.stop_timeout)

    def log_text(self) -> str:
        if not self.log_path.exists():
            return ""
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def log_tail(self, lines: int = 40) -> str:
        """The last ``lines`` lines of the log: where a crash says why."""
        return "\n".join(self.log_text().splitlines()[-lines:])

    def __enter__(self) -> ServiceProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _signal(self, signum: signal.Signals) -> None:
        assert self.process is not None
        if self.own_process_group:
            os.killpg(self.process.pid, signum)
        else:
            self.process.send_signal(signum)

    def _start_error(self, what: str, *, timed_out: bool = False) -> ServiceStartError:
        assert self.process is not None
        return ServiceStartError(
            f"{self.name} {what} (log: {self.log_path}):\n{self.log_tail()}",
            returncode=None if timed_out else self.process.returncode,
            log_path=self.log_path,
        )


def _child_env(overrides: Mapping[str, str | None]) -> dict[str, str]:
    env = {**os.environ}
    for name, value in overrides.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env
