"""The command line: adapters, base resolution, config errors, the smoke run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from chat_fixtures import reference_reply

from services.chat.cli import parse_adapters, resolve_base
from services.chat.config import ChatSettings, ConfigError, load_settings
from services.chat.smoke import ask_once

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "chat"


def test_adapters_are_named_after_their_folder_unless_named(tmp_path):
    adapters = parse_adapters([str(tmp_path / "ppo"), f"veg={tmp_path / 'x'}"])

    assert adapters == {"ppo": tmp_path / "ppo", "veg": tmp_path / "x"}
    with pytest.raises(ConfigError, match="NAME=DIR"):
        parse_adapters([str(tmp_path / "a" / "run"), str(tmp_path / "b" / "run")])


def test_base_falls_back_to_the_adapters_own_base(scripted, tmp_path):
    (tmp_path / "adapter_config.json").write_text(
        json.dumps({"base_model_name_or_path": str(scripted.base_dir)})
    )

    assert resolve_base(ChatSettings(), {"a": tmp_path}) == scripted.base_dir
    with pytest.raises(ConfigError, match="--base"):
        resolve_base(ChatSettings(), {})


def test_shipped_configs_load():
    cpu = load_settings(CONFIGS / "cpu.yaml")
    gpu = load_settings(CONFIGS / "vllm.yaml")

    assert cpu.backend == "transformers" and gpu.backend == "vllm"


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("max_tokens_limit: 10\ndefault_max_tokens: 20\n", "default_max_tokens=20"),
        ("backend: tpu\n", "backend"),
        ("max_lorass: 3\n", "max_lorass"),
        ("- a list\n", "must be a mapping"),
    ],
)
def test_bad_configs_name_the_field(tmp_path, text, words):
    path = tmp_path / "chat.yaml"
    path.write_text(text)

    with pytest.raises(ConfigError, match=words):
        load_settings(path)


def test_missing_config_says_which_file(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.yaml")


def test_ask_once_answers_through_the_real_command(scripted, adapter_dirs, tmp_path):
    from rlaif.usecase import SYSTEM_PROMPT

    question = "Which soup is vegetarian?"
    # ask_once serves with configs/chat/cpu.yaml, which adds the use case's
    # system prompt to a request that has none.
    expected = reference_reply(
        scripted.base_dir, adapter_dirs["veg"], question, 12, system=SYSTEM_PROMPT
    )

    answer = ask_once(
        scripted.base_dir,
        adapter_dirs["veg"],
        question,
        max_tokens=12,
        log_dir=tmp_path / "logs",
    )

    assert answer == expected
    assert list((tmp_path / "logs" / "chat").rglob("*.parquet"))


def test_cpu_config_prompts_like_training_when_the_client_sends_no_system():
    from rlaif.usecase import SYSTEM_PROMPT

    assert load_settings(CONFIGS / "cpu.yaml").default_system_prompt == SYSTEM_PROMPT
