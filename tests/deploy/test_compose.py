"""docker-compose.yml, checked by a real Compose implementation.

Debian's docker-compose validates the file against the Compose schema and
resolves every variable without a Docker engine; the tests then read the
resolved model. Compose's `config` ignores profiles, so the tests work out
for themselves which services each profile starts and check that each
profile is complete on its own.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlparse

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
PROMETHEUS_CONFIG = REPO / "configs" / "prometheus" / "prometheus.yml"

PROFILE_SERVICES = {
    "gpu": {"models", "prompts", "judge", "trainer", "chat"}
    | {"prometheus", "grafana"},
    "cpu": {"bootstrap-cpu", "judge-cpu", "trainer-cpu", "chat-cpu"}
    | {"prometheus", "grafana"},
}
GPU_SERVICES = ("judge", "trainer", "chat")
LONG_RUNNING = ("judge", "chat", "judge-cpu", "chat-cpu", "prometheus", "grafana")


def active_services(model: dict, profile: str) -> dict[str, dict]:
    """The services `docker compose --profile <profile> up` starts."""
    return {
        name: service
        for name, service in model["services"].items()
        if not service.get("profiles") or profile in service["profiles"]
    }


def network_names(services: dict[str, dict]) -> dict[str, str]:
    """Every name a container answers to on the default network -> service."""
    names = {}
    for name, service in services.items():
        names[name] = name
        default = (service.get("networks") or {}).get("default") or {}
        for alias in default.get("aliases", []):
            names[alias] = name
    return names


def published(service: dict) -> list[tuple[str, str, str]]:
    """(host ip, host port, container port) of each published port."""
    triples = []
    for entry in service.get("ports", []):
        match = re.fullmatch(r"(?:(.+):)?(\d+):(\d+)(?:/\w+)?", str(entry))
        assert match, f"unexpected port entry {entry!r}"
        triples.append((match[1] or "", match[2], match[3]))
    return triples


def command_port(service: dict) -> str | None:
    command = [str(part) for part in service.get("command") or []]
    return command[command.index("--port") + 1] if "--port" in command else None


def gpu_device_ids(service: dict) -> list[str]:
    devices = service["deploy"]["resources"]["reservations"]["devices"]
    (device,) = devices
    assert device["driver"] == "nvidia" and "gpu" in device["capabilities"]
    return ",".join(device["device_ids"]).split(",")


@pytest.mark.parametrize("profile", sorted(PROFILE_SERVICES))
def test_each_profile_starts_its_stack_and_nothing_else(compose, profile):
    assert set(active_services(compose, profile)) == PROFILE_SERVICES[profile]


@pytest.mark.parametrize("profile", sorted(PROFILE_SERVICES))
def test_dependencies_of_a_profile_stay_inside_it(compose, profile):
    services = active_services(compose, profile)
    for name, service in services.items():
        for dependency in service.get("depends_on", {}):
            assert dependency in services, f"{name} needs {dependency} ({profile})"


@pytest.mark.parametrize("profile", sorted(PROFILE_SERVICES))
def test_prometheus_targets_resolve_to_listening_ports_in_each_profile(
    compose, profile
):
    """One prometheus.yml serves both profiles through the network aliases."""
    names = network_names(active_services(compose, profile))
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    for job in config["scrape_configs"]:
        for static in job.get("static_configs", []):
            for target in static["targets"]:
                host, port = target.rsplit(":", 1)
                if host == "localhost":
                    continue
                assert host in names, f"job {job['job_name']}: no service {host}"
                service = compose["services"][names[host]]
                container_ports = {p[2] for p in published(service)}
                assert port in container_ports, (job["job_name"], container_ports)


def test_services_listen_on_the_port_they_publish_and_healthcheck(compose):
    for name, service in compose["services"].items():
        port = command_port(service)
        if port is None:
            continue
        assert port in {p[2] for p in published(service)}, name
        probe = " ".join(service["healthcheck"]["test"])
        assert f"127.0.0.1:{port}/readyz" in probe, name


def test_published_ports_bind_to_loopback_by_default(compose):
    ports = [p for s in compose["services"].values() for p in published(s)]
    assert ports
    assert {host for host, _, _ in ports} == {"127.0.0.1"}


def test_bind_address_can_be_opened_on_purpose(compose_config, base_env):
    env = {**base_env, "RLAIF_BIND_ADDRESS": "0.0.0.0"}
    model = yaml.safe_load(compose_config(env).stdout)
    hosts = {p[0] for s in model["services"].values() for p in published(s)}
    assert hosts == {"0.0.0.0"}


def test_gpu_services_reserve_disjoint_nvidia_gpus(compose):
    ids = {name: gpu_device_ids(compose["services"][name]) for name in GPU_SERVICES}
    assert len(ids["trainer"]) == 8
    # The judge runs beside the trainer; the chat service starts after the
    # trainer has finished and may reuse its GPUs.
    assert not set(ids["judge"]) & set(ids["trainer"])
    assert compose["services"]["chat"]["depends_on"]["trainer"] == {
        "condition": "service_completed_successfully"
    }


def judge_tensor_parallel_size(judge: dict) -> int:
    """The value the judge's entry point writes into its vLLM config."""
    assert judge["entrypoint"] == ["python", "docker/run_with_config.py"]
    (override,) = [a for a in judge["command"] if a.startswith("vllm.tensor_")]
    key, value = override.split("=")
    assert key == "vllm.tensor_parallel_size"
    return int(value)


def test_judge_tensor_parallel_size_follows_the_environment(compose_config, base_env):
    env = {**base_env, "JUDGE_GPUS": "0,1", "JUDGE_TP_SIZE": "2"}
    judge = yaml.safe_load(compose_config(env).stdout)["services"]["judge"]
    assert gpu_device_ids(judge) == ["0", "1"]
    assert judge_tensor_parallel_size(judge) == 2


def test_default_judge_tensor_parallel_size_matches_its_gpu_count(compose):
    judge = compose["services"]["judge"]
    assert judge_tensor_parallel_size(judge) == len(gpu_device_ids(judge))


@pytest.mark.parametrize("trainer", ["trainer", "trainer-cpu"])
def test_trainer_waits_for_a_healthy_judge_and_resumes_after_a_crash(compose, trainer):
    service = compose["services"][trainer]
    judge = "judge" if trainer == "trainer" else "judge-cpu"
    assert service["depends_on"][judge] == {"condition": "service_healthy"}
    assert "--resume" in service["command"]
    assert service["restart"].startswith("on-failure")


def test_gpu_trainer_runs_under_accelerate_with_deepspeed(compose):
    service = compose["services"]["trainer"]
    assert service["entrypoint"] == ["accelerate"]
    command = service["command"]
    config = command[command.index("--config_file") + 1]
    assert config.startswith("configs/accelerate/")
    assert "deepspeed" in config


@pytest.mark.parametrize("name", LONG_RUNNING)
def test_long_running_services_have_healthchecks_and_restart(compose, name):
    service = compose["services"][name]
    assert service["healthcheck"]["test"][0] == "CMD"
    assert service["restart"] == "unless-stopped"


@pytest.mark.parametrize("name", GPU_SERVICES)
def test_gpu_services_start_after_the_weights_are_fetched(compose, name):
    depends_on = compose["services"][name]["depends_on"]
    if name == "chat":  # through the trainer
        depends_on = compose["services"]["trainer"]["depends_on"]
    assert depends_on["models"] == {"condition": "service_completed_successfully"}


def test_gpu_services_load_the_weights_the_models_service_fetches(compose):
    fetched = {f"/models/{repo}" for repo in compose["services"]["models"]["command"]}
    assert len(fetched) == 3  # judge, policy, critic
    used = set()
    for name in GPU_SERVICES:
        for word in map(str, compose["services"][name]["command"]):
            used |= set(re.findall(r"/models/[^\s,]+", word))
    assert used == fetched


def test_runs_logs_and_models_are_named_volumes(compose):
    assert {"models", "runs", "logs"} <= set(compose["volumes"])
    for name in ("judge", "trainer", "chat", "judge-cpu", "trainer-cpu", "chat-cpu"):
        mounts = {
            v.split(":")[0]: v.split(":")[1]
            for v in compose["services"][name]["volumes"]
        }
        assert mounts == {"models": "/models", "runs": "/app/runs", "logs": "/app/logs"}


def test_secrets_reach_containers_from_the_environment(compose_config, base_env):
    env = {
        **base_env,
        "HF_TOKEN": "hf_secret_value",
        "RLAIF_JUDGE_API_KEY": "judge-key",
        "RLAIF_CHAT_API_KEY": "chat-key",
    }
    model = yaml.safe_load(compose_config(env).stdout)
    # Only the one-shot download sees the Hugging Face token.
    holders = {
        name
        for name, service in model["services"].items()
        if "hf_secret_value" in str(service.get("environment"))
    }
    assert holders == {"models"}
    for name in GPU_SERVICES:
        environment = model["services"][name]["environment"]
        assert environment["RLAIF_JUDGE_API_KEY"] == "judge-key"
        assert environment["HF_HUB_OFFLINE"] == "1"
    trainer = model["services"]["trainer-cpu"]
    assert trainer["environment"]["RLAIF_JUDGE_API_KEY"] == "judge-key"
    assert "judge.api_key_env=RLAIF_JUDGE_API_KEY" in trainer["command"]


def test_grafana_refuses_to_start_without_an_admin_password(compose_config):
    result = compose_config(env={}, check=False)
    assert result.returncode != 0
    assert "GRAFANA_ADMIN_PASSWORD" in result.stderr


def test_grafana_reaches_the_prometheus_service(compose):
    datasource_file = REPO / "configs/grafana/provisioning/datasources/prometheus.yml"
    (datasource,) = yaml.safe_load(datasource_file.read_text())["datasources"]
    url = urlparse(datasource["url"])
    assert url.hostname in compose["services"]
    container_ports = {p[2] for p in published(compose["services"][url.hostname])}
    assert str(url.port) in container_ports


def test_files_the_services_are_started_with_exist(compose):
    """Configs and scripts named on command lines must ship with the repo."""
    missing = []
    for name, service in compose["services"].items():
        words = [*(service.get("entrypoint") or []), *(service.get("command") or [])]
        named = [w for w in map(str, words) if re.match(r"(configs|docker)/", w)]
        missing += [f"{name}: {path}" for path in named if not (REPO / path).is_file()]
    assert not missing
