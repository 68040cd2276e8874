"""Adapter inspection, vLLM servability and the adapter registry."""

from __future__ import annotations

import json

import pytest
from chat_fixtures import make_adapter

from services.chat.adapters import AdapterRegistry, inspect_adapter, vllm_problem
from services.chat.errors import AdapterError, UnknownModelError


def test_inspect_reads_rank_and_targets_without_loading(adapter_dirs):
    info = inspect_adapter("veg", adapter_dirs["veg"])

    assert info.rank == 4 and info.alpha == 16
    assert set(info.target_modules) == {"q_proj", "v_proj", "o_proj", "down_proj"}
    assert vllm_problem(info) is None


def test_adapter_that_saved_lm_head_is_flagged_for_vllm(scripted, tmp_path):
    folder = make_adapter(
        scripted.base_dir, tmp_path / "head", seed=3, modules_to_save=["lm_head"]
    )

    info = inspect_adapter("head", folder)
    problem = vllm_problem(info)

    assert "lm_head" in info.whole_module_weights
    assert problem is not None and "lm_head" in problem and "modules_to_save" in problem


def test_saved_embedding_weights_are_flagged_even_if_config_omits_them(
    scripted, tmp_path
):
    folder = make_adapter(
        scripted.base_dir, tmp_path / "emb", seed=4, modules_to_save=["embed_tokens"]
    )
    config = json.loads((folder / "adapter_config.json").read_text())
    config["modules_to_save"] = None
    (folder / "adapter_config.json").write_text(json.dumps(config))

    problem = vllm_problem(inspect_adapter("emb", folder))

    assert problem is not None and "embed_tokens" in problem


def test_dora_is_flagged_for_vllm(adapter_dirs, tmp_path):
    config = json.loads((adapter_dirs["veg"] / "adapter_config.json").read_text())
    config["use_dora"] = True
    (tmp_path / "adapter_config.json").write_text(json.dumps(config))

    assert "DoRA" in vllm_problem(inspect_adapter("dora", tmp_path))


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (None, "no adapter_config.json"),
        ("{not json", "not valid JSON"),
        ('{"peft_type": "PROMPT_TUNING"}', "only LoRA"),
    ],
)
def test_unreadable_adapters_are_refused_with_the_reason(tmp_path, content, words):
    if content is not None:
        (tmp_path / "adapter_config.json").write_text(content)

    with pytest.raises(AdapterError, match=words):
        inspect_adapter("x", tmp_path)


def test_registry_refuses_duplicates_the_base_name_and_overflow(adapter_dirs):
    registry = AdapterRegistry("base", max_adapters=2)
    registry.reserve("a")
    registry.commit(inspect_adapter("a", adapter_dirs["veg"]))

    with pytest.raises(AdapterError, match="already loaded"):
        registry.reserve("a")
    with pytest.raises(AdapterError, match="base model's name"):
        registry.reserve("base")
    registry.reserve("b")  # a load in progress takes a place too
    with pytest.raises(AdapterError, match="max_loras"):
        registry.reserve("c")


def test_registry_resolves_base_adapters_and_unknown_names(adapter_dirs):
    registry = AdapterRegistry("base", max_adapters=2)
    registry.reserve("a")
    registry.commit(inspect_adapter("a", adapter_dirs["veg"]))

    assert registry.resolve("base") is None
    assert registry.resolve("a") == "a"
    with pytest.raises(UnknownModelError, match="'base', 'a'"):
        registry.resolve("b")
    registry.remove("a")
    with pytest.raises(UnknownModelError):
        registry.resolve("a")
