"""Every dashboard expression returns data from the real services.

The test starts, on free loopback ports, the CPU judge server (plus a tiny
LLM judge whose unparseable replies feed the invalid-reply panels), the chat
service with a LoRA adapter, and a training run against the CPU judge, then
a real Prometheus server whose config is the shipped
`configs/prometheus/prometheus.yml` with only the targets (and the scrape
interval, for speed) changed. While the services take traffic it runs every
PromQL expression of every Grafana dashboard through Prometheus's HTTP API,
with Grafana's variables filled in as Grafana would, and asks each to return
at least one series with a number in it.

The vLLM panels have no engine on CPU: their expressions must parse
(Prometheus answers `success`) but may return nothing.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
import yaml

from services.common.process import ServiceProcess, free_port

REPO = Path(__file__).resolve().parents[2]
PROMETHEUS_CONFIG = REPO / "configs" / "prometheus" / "prometheus.yml"
DASHBOARD_DIR = REPO / "configs" / "grafana" / "dashboards"
GPU_ONLY_DASHBOARDS = {"vllm"}
# Grafana's own values for a 1 s scrape interval over a short time range.
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__range": "10m"}
SCRAPE_INTERVAL = "1s"
READY_TIMEOUT_S = 120.0
DATA_TIMEOUT_S = 120.0

CORPUS = [
    "Try a chickpea curry with rice and spinach.",
    "A lentil soup with carrots is warming and cheap.",
    "Grill chicken thighs with lemon and garlic.",
    "Tofu stir fry with ginger and soy sauce is quick.",
    "Bake salmon with dill and potatoes for dinner.",
    "What can I cook tonight? How do I make soup?",
]
QUESTIONS = [
    "What can I cook tonight?",
    "How do I make a quick soup?",
    "What goes well with potatoes?",
    "What is a good curry?",
]


# -- processes ---------------------------------------------------------------


CHILD_ENV = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "OMP_NUM_THREADS": "1",
    "PYTHONUNBUFFERED": "1",
}


def start(
    name: str,
    command: list[str],
    ports: dict[str, int],
    log_dir: Path,
    cwd: Path = REPO,
    ready_path: str = "/readyz",
) -> ServiceProcess:
    """Launch without waiting, so the services boot side by side."""
    service = ServiceProcess(
        command,
        port=ports[name],
        log_path=log_dir / f"{name}.log",
        name=name,
        ready_path=ready_path,
        env=CHILD_ENV,
        cwd=cwd,
        startup_timeout=READY_TIMEOUT_S,
        # SIGTERM and SIGKILL reach its own process group, nothing else.
        own_process_group=True,
    )
    return service.launch()


def tail(service: ServiceProcess, lines: int = 40) -> str:
    return f"--- {service.name} ({service.log_path}) ---\n" + service.log_tail(lines)


def rlaif(*args: str) -> list[str]:
    """The `rlaif` console script, run by this interpreter."""
    return [sys.executable, "-m", "rlaif.cli", *args]


# -- fixtures ----------------------------------------------------------------


@pytest.fixture(scope="module")
def prometheus_binaries(tool) -> tuple[str, str]:
    return tool("prometheus"), tool("promtool")


@pytest.fixture(scope="module")
def tiny_policy(tmp_path_factory) -> tuple[Path, Path]:
    """A tiny Llama in HF format and a LoRA adapter saved for it."""
    import torch
    from peft import LoraConfig, get_peft_model

    from rlaif.tiny_model import MICRO_SHAPE, save_tiny_llama

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("policy")
    base, adapter = root / "base", root / "adapter"
    # The long context fits the judge's rubric prompt, which this small
    # vocabulary splits into many tokens.
    _, model = save_tiny_llama(
        base,
        CORPUS * 4 + QUESTIONS,
        vocab_size=320,
        shape=replace(MICRO_SHAPE, max_position_embeddings=2048),
        model_max_length=2048,
    )
    lora = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"])
    get_peft_model(model, lora).save_pretrained(adapter)
    return base, adapter


@pytest.fixture(scope="module")
def stack(tmp_path_factory, tiny_policy, prometheus_binaries):
    """Judges, chat, trainer and Prometheus, running; stopped at the end."""
    base, adapter = tiny_policy
    prometheus_binary, promtool = prometheus_binaries
    work = tmp_path_factory.mktemp("stack")
    names = ("judge", "judge_llm", "chat", "trainer", "prometheus")
    ports = {name: free_port() for name in names}
    services: list[ServiceProcess] = []
    try:
        for name, config in judge_configs(base, work).items():
            command = judge_command(ports[name], config)
            services.append(start(name, command, ports, work))
        command = chat_command(ports["chat"], base, adapter, work)
        chat = start("chat", command, ports, work)
        services.append(chat)
        for judge in services[:2]:
            judge.wait_ready()
        command = train_command(ports, base, work)
        services.append(start("trainer", command, ports, work))
        config_file = work / "prometheus.yml"
        config_file.write_text(yaml.safe_dump(scrape_config(ports)))
        subprocess.run([promtool, "check", "config", str(config_file)], check=True)
        prometheus = start(
            "prometheus",
            [
                prometheus_binary,
                f"--config.file={config_file}",
                f"--storage.tsdb.path={work / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{ports['prometheus']}",
            ],
            ports,
            work,
            cwd=work,
            ready_path="/-/ready",
        )
        services.append(prometheus)
        chat.wait_ready()
        prometheus.wait_ready(30)
        yield {"ports": ports, "services": services}
    finally:
        for service in reversed(services):
            service.stop()


def url(ports: dict[str, int], name: str) -> str:
    return f"http://127.0.0.1:{ports[name]}"


def judge_configs(base: Path, work: Path) -> dict[str, Path]:
    """The shipped CPU judge, and a tiny causal LM judge in text mode.

    The CPU judge's few-shot embedding backend always gives a score, so the
    "invalid rate by reason" panel would stay empty; the untrained tiny
    model's replies hold no score and are counted invalid with a reason,
    as a confused LLM judge's would be. Both log under `work`.
    """
    shipped = yaml.safe_load((REPO / "configs/judge/cpu.yaml").read_text())
    shipped["server"]["log_dir"] = str(work / "logs")
    llm = {
        "backend": "transformers",
        "rubrics_dir": shipped["rubrics_dir"],
        "transformers": {"model_path": str(base), "mode": "text", "max_new_tokens": 4},
        "server": {"log_dir": str(work / "logs")},
    }
    paths = {"judge": work / "judge.yaml", "judge_llm": work / "judge-llm.yaml"}
    paths["judge"].write_text(yaml.safe_dump(shipped))
    paths["judge_llm"].write_text(yaml.safe_dump(llm))
    return paths


def judge_command(port: int, config: Path) -> list[str]:
    return rlaif(
        "judge",
        "serve",
        "--config",
        str(config),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    )


def chat_command(port: int, base: Path, adapter: Path, work: Path) -> list[str]:
    return rlaif(
        "chat",
        "serve",
        "--config",
        "configs/chat/cpu.yaml",
        "--base",
        str(base),
        "--adapter",
        f"tuned={adapter}",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-dir",
        str(work / "logs"),
    )


def train_command(ports: dict[str, int], base: Path, work: Path) -> list[str]:
    """A long run: the test stops it once Prometheus has seen enough."""
    prompts = work / "train.txt"
    prompts.write_text("\n".join(QUESTIONS) + "\n")
    return rlaif(
        "train",
        "--config",
        "configs/train/cpu-tiny.yaml",
        "--judge-url",
        url(ports, "judge"),
        "--out",
        str(work / "run"),
        "--max-steps",
        "1000",
        "--set",
        f"model.path={base}",
        "--set",
        f"prompts.train={prompts}",
        "--set",
        f"logging.prometheus_port={ports['trainer']}",
        "--set",
        "logging.tensorboard=false",
        "--set",
        "checkpoints.every=0",
        # Small steps, so Prometheus sees several of them within seconds.
        "--set",
        "optim.rollout_batch_size=4",
        "--set",
        "optim.micro_batch_size=4",
        "--set",
        "generation.max_new_tokens=8",
        "--set",
        "ppo.num_ppo_epochs=1",
    )


def scrape_config(ports: dict[str, int]) -> dict:
    """The shipped Prometheus config, pointed at this test's processes."""
    targets = {
        "judge": [ports["judge"], ports["judge_llm"]],
        "chat": [ports["chat"]],
        "trainer": [ports["trainer"]],
        "prometheus": [ports["prometheus"]],
    }
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    config["global"].update(scrape_interval=SCRAPE_INTERVAL, scrape_timeout="1s")
    jobs = []
    for job in config["scrape_configs"]:
        if "file_sd_configs" in job:
            continue  # stand-alone vLLM servers: none here
        job.pop("scrape_interval", None)
        ports_of_job = targets[job["job_name"]]
        job["static_configs"] = [
            {"targets": [f"127.0.0.1:{port}" for port in ports_of_job]}
        ]
        jobs.append(job)
    config["scrape_configs"] = jobs
    return config


# -- traffic and queries -----------------------------------------------------


class Traffic(threading.Thread):
    """Keeps the judge and the chat service busy until stopped."""

    def __init__(self, ports: dict[str, int]) -> None:
        super().__init__(daemon=True)
        self.ports = ports
        self.chat = f"{url(ports, 'chat')}/v1/chat/completions"
        self.done = threading.Event()
        self.errors: list[str] = []

    def run(self) -> None:
        score = {"rubric": "vegetarian", "texts": CORPUS[:3]}
        with httpx.Client(timeout=30) as client:
            while not self.done.is_set():
                calls = [
                    (f"{url(self.ports, 'judge')}/v1/score", score),
                    (f"{url(self.ports, 'judge_llm')}/v1/score", score),
                    (self.chat, chat_request("tuned", stream=True)),
                    (self.chat, chat_request("base", stream=False)),
                ]
                for address, body in calls:
                    try:
                        client.post(address, json=body).raise_for_status()
                    except httpx.HTTPError as exc:
                        self.errors.append(f"{address}: {exc!r}")
                self.done.wait(0.5)

    def stop(self) -> None:
        self.done.set()
        self.join(timeout=60)


def chat_request(model: str, stream: bool) -> dict:
    return {
        "model": model,
        "messages": [{"role": "user", "content": QUESTIONS[0]}],
        "max_tokens": 8,
        "stream": stream,
    }


def dashboard_queries() -> list[tuple[str, str, str]]:
    """(dashboard, panel title, expression) of every panel target."""
    queries = []
    for path in sorted(DASHBOARD_DIR.glob("*.json")):
        for panel in json.loads(path.read_text())["panels"]:
            for target in panel["targets"]:
                queries.append((path.stem, panel["title"], target["expr"]))
    return queries


def grafana_expand(expr: str) -> str:
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    return expr


def query(port: int, expr: str) -> dict:
    response = httpx.get(
        f"http://127.0.0.1:{port}/api/v1/query",
        params={"query": grafana_expand(expr)},
        timeout=10,
    )
    return response.json()


def has_numbers(answer: dict) -> bool:
    """At least one series, and one of them holds a finite value."""
    if answer.get("status") != "success":
        return False
    data = answer["data"]
    if data["resultType"] == "scalar":
        return math.isfinite(float(data["result"][1]))
    return any(math.isfinite(float(s["value"][1])) for s in data["result"])


def targets_health(port: int) -> dict[str, str]:
    answer = httpx.get(f"http://127.0.0.1:{port}/api/v1/targets", timeout=10).json()
    return {
        f"{t['labels']['job']} {t['labels']['instance']}": (
            f"{t['health']} {t['lastError']}".strip()
        )
        for t in answer["data"]["activeTargets"]
    }


# -- the test ----------------------------------------------------------------


def test_every_dashboard_expression_returns_data(stack):
    port = stack["ports"]["prometheus"]
    queries = dashboard_queries()
    needs_data = [q for q in queries if q[0] not in GPU_ONLY_DASHBOARDS]
    traffic = Traffic(stack["ports"])
    traffic.start()
    try:
        deadline = time.monotonic() + DATA_TIMEOUT_S
        while True:
            empty = [q for q in needs_data if not has_numbers(query(port, q[2]))]
            if not empty or time.monotonic() > deadline:
                break
            for service in stack["services"]:
                if service.process.poll() is not None:
                    pytest.fail(f"{service.name} exited\n{tail(service)}")
            time.sleep(2)
        gpu_only = [(q, query(port, q[2])) for q in queries if q not in needs_data]
    finally:
        traffic.stop()

    logs = "\n".join(tail(s, 15) for s in stack["services"])
    assert not empty, (
        "no data for:\n"
        + "\n".join(f"  {d} / {title}: {expr}" for d, title, expr in empty)
        + f"\ntargets: {targets_health(port)}\ntraffic errors: "
        + f"{traffic.errors[:3]}\n{logs}"
    )
    unparsed = [(q, a.get("error")) for q, a in gpu_only if a["status"] != "success"]
    assert not unparsed
