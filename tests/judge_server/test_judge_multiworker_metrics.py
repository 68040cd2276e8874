"""`rlaif judge serve --workers 2`: /metrics totals count every worker."""

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
from fake_openai import build_fake_openai
from judge_fakes import serve_in_thread

ROOT = Path(__file__).resolve().parents[2]
N_REQUESTS = 40


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_ready(url: str, process: subprocess.Popen, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"judge exited with {process.returncode}")
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise RuntimeError("judge did not become ready")


def score_total(metrics_text: str) -> float:
    pattern = r'^rlaif_judge_requests_total\{route="/v1/score",status="200"\} (\S+)$'
    match = re.search(pattern, metrics_text, re.M)
    return float(match.group(1)) if match else 0.0


def test_metrics_totals_are_exact_with_two_workers(tmp_path):
    with serve_in_thread(build_fake_openai()) as openai_url:
        config = tmp_path / "judge.yaml"
        config.write_text(
            "backend: openai\n"
            f"openai: {{base_url: '{openai_url}/v1', model: judge, backoff_s: 0}}\n"
            f"request_log: {{enabled: false}}\nserver: {{log_dir: {tmp_path}}}\n"
        )
        port = free_port()
        env = {**os.environ, "TMPDIR": str(tmp_path)}
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "rlaif.cli",
                "--log-level",
                "WARNING",
                "judge",
                "serve",
                "--config",
                str(config),
                "--port",
                str(port),
                "--workers",
                "2",
            ],
            cwd=ROOT,
            env=env,
            start_new_session=True,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            wait_ready(url, process)
            for i in range(N_REQUESTS):
                # A new connection per request lets the kernel spread them
                # over both workers' accept queues.
                response = httpx.post(
                    f"{url}/v1/score",
                    json={"texts": [f"Try a chickpea curry, take {i}."]},
                    headers={"Connection": "close"},
                )
                assert response.status_code == 200
                assert response.json()["results"][0]["valid"]
            scrapes = [
                score_total(
                    httpx.get(f"{url}/metrics", headers={"Connection": "close"}).text
                )
                for _ in range(6)
            ]
            (metrics_dir,) = tmp_path.glob("rlaif-judge-metrics-*")
            pids = {p.stem.rsplit("_", 1)[-1] for p in metrics_dir.glob("counter_*.db")}
        finally:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=30)

    assert scrapes == [N_REQUESTS] * len(scrapes)
    assert len(pids) >= 2  # both workers wrote to the shared folder
