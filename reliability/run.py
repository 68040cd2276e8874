"""``python -m reliability.run``: every reliability and security measurement.

Starts the judge and the chat service on 127.0.0.1, fuzzes them with
schemathesis, checks keys, body limits and error bodies, drives them with
the bounded load script, kills and restarts the judge, and puts the
trainer's judge client in front of misbehaving judges. Prints the figures
and writes them to ``<out>/report.json``; exits 1 when a check failed.

``--quick`` runs the same code with small counts (about two minutes);
the full run (``make reliability``) takes about ten minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from reliability import bad_judge, faults, fuzz, security
from reliability.load import LoadPlan, LoadReport, chat_body, drive, judge_body
from reliability.services import build_tiny_base, chat_process, judge_process

logger = logging.getLogger(__name__)

JUDGE_KEY = "rel-judge-key-5f2c"
CHAT_KEY = "rel-chat-key-9a7e"
BODY_LIMIT = 65_536
MAX_RSS_GROWTH = 1.10  # "memory stays flat": under 10% growth over the run


def fuzz_and_security(work: Path, quick: bool) -> dict[str, Any]:
    """Both services with keys: schemathesis, then the security checks."""
    examples = 10 if quick else 50
    base = build_tiny_base(work / "base")
    judge = judge_process(
        work / "judge-keyed", api_key=JUDGE_KEY, server={"max_body_bytes": BODY_LIMIT}
    )
    chat = chat_process(
        work / "chat-keyed", base, api_key=CHAT_KEY, max_body_bytes=BODY_LIMIT
    )
    reports: dict[str, Any] = {}
    with judge, chat:
        reports["fuzz_judge"] = fuzz.fuzz_service("judge", judge, examples)
        reports["fuzz_chat"] = fuzz.fuzz_service("chat", chat, examples)
        checks = {"judge": (judge, "/v1/score", security.JUDGE_BAD_REQUESTS)}
        checks["chat"] = (chat, "/v1/chat/completions", security.CHAT_BAD_REQUESTS)
        for name, (service, path, bad) in checks.items():
            security.exercise(service, name)
            report = security.SecurityReport(service=name)
            security.check_auth(service, report)
            security.check_body_limit(service, path, BODY_LIMIT, report)
            security.check_error_bodies(service, bad, report)
            reports[f"security_{name}"] = report
    # After shutdown, so every buffered row is on disk and searched too.
    for name, service, key in (("judge", judge, JUDGE_KEY), ("chat", chat, CHAT_KEY)):
        security.check_key_absent(
            service,
            service.log_path.parent / "logs",
            [key, "wrong-key-0000"],
            reports[f"security_{name}"],
        )
    return {name: report.as_dict() for name, report in reports.items()}


def load(work: Path, quick: bool) -> dict[str, Any]:
    """The judge with 200 clients, the chat service with 20."""
    seconds = 5.0 if quick else 60.0
    judge_clients = 50 if quick else 200
    max_queue = 64 if quick else 256
    judge = judge_process(
        work / "judge-load",
        batching={"max_queue": max_queue},
        limits={"max_texts_per_request": 64},
    )
    base = build_tiny_base(work / "base")
    chat = chat_process(work / "chat-load", base)
    results = {}
    with judge:
        results["load_judge"] = _measured(
            judge,
            "judge",
            f"{judge.url}/v1/score",
            judge_body(4),
            LoadPlan(judge_clients, seconds, max_requests=200_000),
            items=4,
        )
        results["load_judge"].extra["max_queue_texts"] = max_queue
    with chat:
        results["load_chat"] = _measured(
            chat,
            "chat",
            f"{chat.url}/v1/chat/completions",
            chat_body("base", 16),
            LoadPlan(20, seconds, max_requests=20_000, timeout_s=120.0),
        )
    return {name: report.as_dict() for name, report in results.items()}


def _measured(service, name, url, body, plan: LoadPlan, items: int = 1) -> LoadReport:
    """A warm-up burst, RSS, the measured run, RSS again."""
    warmup = LoadPlan(plan.clients, min(3.0, plan.duration_s), plan.max_requests)
    asyncio.run(drive(f"{name}-warmup", url, body, warmup, service.headers, items))
    before = service.rss_bytes()
    counters = _server_counters(service)
    report = asyncio.run(drive(name, url, body, plan, service.headers, items))
    time.sleep(1.0)
    report.rss_before_mb = round(before / 2**20, 1)
    report.rss_after_mb = round(service.rss_bytes() / 2**20, 1)
    report.extra.update(_server_side(counters, _server_counters(service)))
    return report


SERVER_COUNTERS = {
    "latency_sum": 'rlaif_judge_request_latency_seconds_sum{route="/v1/score"}',
    "latency_count": 'rlaif_judge_request_latency_seconds_count{route="/v1/score"}',
    "backend_seconds": "rlaif_judge_backend_batch_latency_seconds_sum",
    "backend_texts": "rlaif_judge_batch_size_sum",
}


def _server_counters(service) -> dict[str, float]:
    """The judge's own latency and batch counters (empty for chat)."""
    text = httpx.get(f"{service.url}/metrics", headers=service.headers).text
    values = {}
    for line in text.splitlines():
        series, _, value = line.rpartition(" ")
        for key, name in SERVER_COUNTERS.items():
            if series == name:
                values[key] = float(value)
    return values


def _server_side(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """Latency as the server saw it and the backend's busy throughput.

    The load generator shares the CPU with the server, so the client-side
    latency includes the generator's own scheduling delays; these figures
    do not.
    """
    if len(after) < len(SERVER_COUNTERS):
        return {}
    delta = {key: after[key] - before.get(key, 0.0) for key in SERVER_COUNTERS}
    requests = delta["latency_count"] or 1.0
    busy = delta["backend_seconds"] or 1.0
    return {
        "server_mean_latency_ms": round(delta["latency_sum"] / requests * 1e3, 1),
        "backend_texts_per_busy_s": round(delta["backend_texts"] / busy, 1),
    }


def fault_runs(work: Path, quick: bool) -> dict[str, Any]:
    kill = faults.kill_during_logging(
        work / "kill9", clients=20, load_s=3.0 if quick else 10.0
    )
    restart = faults.restart_during_training(
        work / "restart", steps=3 if quick else 6, kill_after_step=1 if quick else 2
    )
    return {"kill9_logging": kill.as_dict(), "restart_training": restart.as_dict()}


def bad_judges(work: Path, quick: bool) -> dict[str, Any]:
    return {f"bad_judge_{r.mode}": r.as_dict() for r in bad_judge.run_all()}


RUNNERS = {
    "fuzz_security": fuzz_and_security,
    "load": load,
    "faults": fault_runs,
    "bad_judge": bad_judges,
}


def problems_of(results: dict[str, Any]) -> list[str]:
    """Every problem any check reported, prefixed by the check's name."""
    found = [
        f"{name}: {p}" for name, r in results.items() for p in r.get("problems", [])
    ]
    judge = results.get("load_judge")
    if judge and judge["errors"]:
        found.append(f"load_judge: {judge['errors']} requests failed other than 503")
    if judge and judge["shed_503"] != judge["shed_with_retry_after"]:
        found.append("load_judge: a 503 came without Retry-After")
    chat = results.get("load_chat")
    if chat and chat["errors"]:
        found.append(f"load_chat: {chat['errors']} requests failed")
    for name in ("load_judge", "load_chat"):
        run = results.get(name)
        if run and run["rss_after_mb"] > run["rss_before_mb"] * MAX_RSS_GROWTH:
            found.append(
                f"{name}: RSS grew from {run['rss_before_mb']} to "
                f"{run['rss_after_mb']} MB under load"
            )
    return found


def format_figures(results: dict[str, Any]) -> str:
    """The figures, one line per measurement, for the terminal and README."""
    lines = []
    for name, r in results.items():
        if name.startswith("load_"):
            lines.append(
                f"{name}: {r['clients']} clients {r['duration_s']}s, "
                f"{r['throughput_rps']} req/s ({r['items_per_request']} per request), "
                f"p50/p95/p99 {r['p50_ms']}/{r['p95_ms']}/{r['p99_ms']} ms, "
                f"503 {r['shed_rate']:.1%} "
                f"(p50/p99 {r['shed_p50_ms']}/{r['shed_p99_ms']} ms, "
                f"{r['shed_with_retry_after']} with Retry-After), "
                f"errors {r['error_rate']:.1%}, "
                f"RSS {r['rss_before_mb']} -> {r['rss_after_mb']} MB"
                + "".join(f", {k} {v}" for k, v in r["extra"].items())
            )
        elif name.startswith("fuzz_"):
            lines.append(
                f"{name}: {r['examples']} examples over {r['operations']} "
                f"operations, statuses {r['statuses']}, 5xx {r['server_errors']}, "
                f"non-JSON 4xx {r['non_json_4xx']}, leaking bodies "
                f"{r['leaking_bodies']}"
            )
        else:
            shown = {k: v for k, v in r.items() if k not in ("problems", "service")}
            lines.append(f"{name}: {json.dumps(shown)}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m reliability.run")
    parser.add_argument("--quick", action="store_true", help="Small counts.")
    parser.add_argument("--out", type=Path, default=Path("runs/reliability"))
    parser.add_argument(
        "--only", action="append", choices=sorted(RUNNERS), help="Run these only."
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")

    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="rlaif-reliability-") as folder:
        for name in args.only or list(RUNNERS):
            started = time.monotonic()
            results.update(RUNNERS[name](Path(folder), args.quick))
            sys.stdout.write(f"[{name} done in {time.monotonic() - started:.0f}s]\n")
            sys.stdout.flush()

    problems = problems_of(results)
    args.out.mkdir(parents=True, exist_ok=True)
    report = {"quick": args.quick, "results": results, "problems": problems}
    (args.out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    sys.stdout.write(format_figures(results) + "\n")
    for problem in problems:
        sys.stdout.write(f"PROBLEM {problem}\n")
    sys.stdout.write(
        f"{'FAILED' if problems else 'passed'}: report in {args.out / 'report.json'}\n"
    )
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
