"""The vLLM backend's decisions that need no GPU: import, ranks, merging."""

from __future__ import annotations

import importlib.util

import pytest
from chat_fixtures import make_adapter

from services.chat.adapters import AdapterRegistry, inspect_adapter
from services.chat.backends import create_backend
from services.chat.backends.vllm_backend import VLLMBackend
from services.chat.config import ChatSettings, ConfigError, vllm_rank_for
from services.chat.errors import AdapterError


@pytest.mark.skipif(
    importlib.util.find_spec("vllm") is not None, reason="vLLM is installed"
)
def test_selecting_vllm_without_it_says_how_to_install(tmp_path):
    with pytest.raises(ImportError, match=r"pip install -e \.\[gpu\]"):
        create_backend(ChatSettings(backend="vllm"), tmp_path)


@pytest.mark.parametrize(("rank", "reserved"), [(1, 1), (4, 8), (8, 8), (17, 32)])
def test_lora_rank_rounds_up_to_a_rank_vllm_has(rank, reserved):
    assert vllm_rank_for(rank) == reserved


def test_rank_beyond_vllm_is_a_config_error():
    with pytest.raises(ConfigError, match="rlaif chat merge"):
        vllm_rank_for(1024)


def _backend(scripted, tmp_path, **settings) -> VLLMBackend:
    return VLLMBackend(
        scripted.base_dir,
        AdapterRegistry("base", 4),
        ChatSettings(merged_dir=tmp_path / "merged", **settings),
    )


def test_max_lora_rank_comes_from_the_adapters(scripted, adapter_dirs, tmp_path):
    backend = _backend(scripted, tmp_path, max_lora_rank=24)
    infos = [inspect_adapter("veg", adapter_dirs["veg"])]

    assert backend._rank_to_reserve(infos) == 32  # config 24 > adapter rank 4


@pytest.fixture(scope="module")
def head_adapter(scripted, tmp_path_factory):
    folder = tmp_path_factory.mktemp("head") / "head"
    return make_adapter(scripted.base_dir, folder, seed=5, modules_to_save=["lm_head"])


def test_unservable_adapter_is_served_merged(scripted, head_adapter, tmp_path):
    backend = _backend(scripted, tmp_path)

    model_dir, loras = backend._plan([inspect_adapter("head", head_adapter)])

    assert model_dir == tmp_path / "merged" / "head"
    assert (model_dir / "config.json").is_file() and loras == []
    assert not backend.base_available


def test_unservable_adapter_is_refused_with_the_reason(
    scripted, head_adapter, adapter_dirs, tmp_path
):
    refusing = _backend(scripted, tmp_path, unservable_adapter="refuse")
    with pytest.raises(AdapterError, match="lm_head.*modules_to_save"):
        refusing._plan([inspect_adapter("head", head_adapter)])

    merging = _backend(scripted, tmp_path)
    with pytest.raises(AdapterError, match="only adapter"):
        merging._plan(
            [
                inspect_adapter("head", head_adapter),
                inspect_adapter("veg", adapter_dirs["veg"]),
            ]
        )
