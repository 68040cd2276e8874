"""Training config: one shape for all algorithms, errors that name the fix."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from trainer.config import config_from_dict, load_config
from trainer.errors import ConfigError

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "train"


def _raw(**sections):
    raw = {"model": {"path": "m"}, "prompts": {"train": "p.txt"}}
    for name, values in sections.items():
        raw[name] = values if not isinstance(values, dict) else {**values}
    return raw


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_configs_load(path):
    config = load_config(path)

    assert config.lora.modules_to_save is None
    assert "vegetarian" not in config.prompts.system_prompt.lower()


def test_error_names_field_value_and_fix():
    with pytest.raises(ConfigError) as info:
        config_from_dict(_raw(optim={"rollout_batch_size": 10, "micro_batch_size": 4}))

    message = str(info.value)
    assert "optim.rollout_batch_size=10" in message
    assert "multiple of optim.micro_batch_size=4" in message


def test_unknown_key_is_refused_with_the_known_ones():
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['lr_rate'\]"):
        config_from_dict(_raw(optim={"lr_rate": 1e-3}))


def test_ppo_cannot_drop_invalid_scores():
    with pytest.raises(ConfigError, match="judge.invalid_policy='drop'"):
        config_from_dict(_raw(judge={"invalid_policy": "drop"}))

    grpo = config_from_dict(_raw(algo="grpo", judge={"invalid_policy": "drop"}))
    assert grpo.judge.invalid_policy == "drop"


def test_group_size_must_divide_the_rollout_batch():
    with pytest.raises(ConfigError, match="rloo.num_generations=3"):
        config_from_dict(_raw(algo="rloo", rloo={"num_generations": 3}))


def test_set_overrides_parse_yaml_values(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("model: {path: m}\nprompts: {train: p.txt}\n")

    config = load_config(
        path, ["optim.lr=5e-4", "judge.urls=[http://a, http://b]", "algo=grpo"]
    )

    assert config.optim.lr == 5e-4
    assert config.judge.urls == ["http://a", "http://b"]
    assert config.algo == "grpo"


def test_cli_reports_a_config_error_with_exit_code_2(tmp_path, capsys):
    from rlaif.cli import main

    path = tmp_path / "c.yaml"
    path.write_text("model: {path: m}\nprompts: {train: p.txt}\noptim: {lr: -1}\n")

    code = main(["train", "--config", str(path), "--out", str(tmp_path / "out")])

    assert code == 2
    assert "optim.lr=-1 is invalid" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("override", "words"),
    [
        ("optim.steps=abc", "optim.steps='abc' is invalid: use a value of type int"),
        ("judge.urls=http://127.0.0.1:1", "judge.urls='http://127.0.0.1:1'"),
        ("checkpoints.every=true", "checkpoints.every=True"),
        ("lora.r=[1]", "lora.r=[1]"),
    ],
)
def test_wrong_types_are_refused_with_the_field_named(override, words):
    with pytest.raises(ConfigError, match=re.escape(words)):
        load_config(CONFIGS / "cpu-tiny.yaml", [override])
