"""The compose services' command lines, read by the project's own parsers.

A renamed flag or config key would otherwise surface only when a container
starts. Every service that runs `rlaif` has its arguments parsed by the real
`rlaif` parser, and the trainers' `--set` overrides are applied to the
shipped training configs by the trainer's own config loader.
"""

from __future__ import annotations

import pytest

from rlaif.cli import build_parser

RLAIF_SERVICES = ("judge", "trainer", "chat", "judge-cpu", "trainer-cpu", "chat-cpu")


def rlaif_arguments(service: dict) -> list[str]:
    """What `rlaif` receives, however the service's entry point wraps it."""
    entrypoint = service.get("entrypoint") or ["rlaif"]
    command = [str(part) for part in service.get("command") or []]
    if entrypoint == ["rlaif"]:
        return command
    if entrypoint == ["accelerate"]:
        return command[command.index("rlaif.cli") + 1 :]
    if entrypoint == ["python", "docker/run_with_config.py"]:
        config, wrapped = command[0], command[command.index("--") + 1 :]
        assert wrapped[0] == "rlaif"
        return [config if part == "{config}" else part for part in wrapped[1:]]
    raise AssertionError(f"unexpected entry point {entrypoint}")


@pytest.mark.parametrize("name", RLAIF_SERVICES)
def test_rlaif_accepts_the_service_command(compose, name):
    args = build_parser().parse_args(rlaif_arguments(compose["services"][name]))
    assert callable(args.handler)


@pytest.mark.parametrize("name", ["trainer", "trainer-cpu"])
def test_training_overrides_fit_the_shipped_config(compose, name):
    from trainer.cli import build_config

    args = build_parser().parse_args(rlaif_arguments(compose["services"][name]))
    config = build_config(args)
    assert config.logging.prometheus_port == 9400  # the port compose publishes
    assert config.judge.api_key_env == "RLAIF_JUDGE_API_KEY"
    assert config.judge.urls == ["http://judge:8000"]


def test_gpu_trainer_reads_the_fetched_weights(compose):
    from trainer.cli import build_config

    args = build_parser().parse_args(rlaif_arguments(compose["services"]["trainer"]))
    config = build_config(args)
    assert config.model.path == "/models/meta-llama/Llama-2-7b-chat-hf"
    assert config.ppo.value_model == "/models/TinyLlama/TinyLlama-1.1B-Chat-v1.0"


@pytest.mark.parametrize("name", ["chat", "chat-cpu"])
def test_chat_settings_load_with_the_service_flags(compose, name):
    from services.chat.cli import serve_command
    from services.chat.config import load_settings

    args = build_parser().parse_args(rlaif_arguments(compose["services"][name]))
    assert args.handler is serve_command
    settings = load_settings(
        args.config, base=args.base, host=args.host, port=args.port, log_dir=None
    )
    assert (settings.host, settings.port) == ("0.0.0.0", 8002)
    assert settings.backend == ("vllm" if name == "chat" else "transformers")


@pytest.mark.parametrize("name", ["judge", "judge-cpu"])
def test_judge_config_loads_with_the_service_flags(compose, name):
    from judge_server.config import load_config

    args = build_parser().parse_args(rlaif_arguments(compose["services"][name]))
    config = load_config(args.config, host=args.host, port=args.port)
    assert (config.server.host, config.server.port) == ("0.0.0.0", 8000)
    assert config.backend == ("vllm" if name == "judge" else "embedding")
