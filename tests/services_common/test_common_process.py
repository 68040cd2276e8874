"""ServiceProcess against tiny Python children: ready, crash, hang, stop."""

import signal
import socket
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.common.process import ServiceProcess, ServiceStartError, free_port

# Answers 200 on /readyz only after a short delay, like a loading model.
SERVER = """
import http.server, sys, time
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200 if self.path == "/readyz" else 404)
        self.end_headers()
    def log_message(self, *args):
        pass
print("loading", flush=True)
time.sleep(0.3)
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
"""


def child(code: str, log_path: Path, **options: Any) -> ServiceProcess:
    """``python -c code PORT`` on a free port; ``code`` may serve on it."""
    port = free_port()
    command = [sys.executable, "-c", code, str(port)]
    return ServiceProcess(command, port=port, log_path=log_path, **options)


def test_free_port_can_be_bound():
    port = free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


def test_start_waits_for_readyz_and_exit_stops(tmp_path):
    service = child(SERVER, tmp_path / "s.log")

    with service:
        assert httpx.get(service.ready_url).status_code == 200
        assert service.running()

    assert service.process.returncode == -signal.SIGTERM
    assert "loading" in service.log_text()


def test_a_crash_raises_with_status_env_and_log_tail(tmp_path, monkeypatch):
    monkeypatch.setenv("DROPPED", "inherited")
    code = "import os; print(os.environ.get('SET'), os.environ.get('DROPPED'));"
    code += "raise SystemExit(3)"
    env = {"SET": "given", "DROPPED": None}
    service = child(code, tmp_path / "crash.log", name="crasher", env=env)

    with pytest.raises(ServiceStartError, match="crasher exited with status 3") as err:
        service.start()

    assert err.value.returncode == 3
    assert "given None" in str(err.value)


def test_not_ready_in_time_stops_the_process_and_says_so(tmp_path):
    code = "import time; print('stuck', flush=True); time.sleep(60)"
    service = child(code, tmp_path / "hang.log", startup_timeout=1.0)

    with pytest.raises(ServiceStartError, match="not ready at .*/readyz") as err:
        service.start()

    assert err.value.returncode is None
    assert "stuck" in str(err.value)
    assert not service.running()


@pytest.mark.parametrize("own_process_group", [False, True])
def test_stop_kills_a_process_that_ignores_sigterm(tmp_path, own_process_group):
    code = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN);"
    code += "print('armed', flush=True); time.sleep(60)"
    service = child(
        code,
        tmp_path / "stubborn.log",
        stop_timeout=0.5,
        own_process_group=own_process_group,
    ).launch()
    while "armed" not in service.log_text():
        assert service.running()
        time.sleep(0.05)

    service.stop()

    assert service.process.returncode == -signal.SIGKILL


def test_a_restart_appends_to_the_log(tmp_path):
    log = tmp_path / "restart.log"
    log.write_text("stale\n")
    service = child(SERVER, log)

    service.start()
    service.kill()
    service.start()
    service.stop()

    assert log.read_text().splitlines() == ["loading", "loading"]
