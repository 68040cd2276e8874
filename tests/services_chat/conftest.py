"""Session fixtures: the scripted model, adapters and a running service."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from chat_fixtures import (
    API_KEY,
    CORPUS,
    RunningService,
    ScriptedModel,
    make_adapter,
    script_reply,
    scripted_llama,
    serve_in_thread,
)

from rlaif.tiny_model import train_tokenizer


@pytest.fixture(scope="session")
def scripted(tmp_path_factory: pytest.TempPathFactory) -> ScriptedModel:
    torch.manual_seed(0)
    tokenizer = train_tokenizer(CORPUS * 8, vocab_size=400)
    reply_ids = script_reply(tokenizer)
    model = scripted_llama(tokenizer, reply_ids)
    base_dir = tmp_path_factory.mktemp("chat") / "base"
    model.save_pretrained(base_dir)
    tokenizer.save_pretrained(base_dir)
    return ScriptedModel(base_dir, tokenizer.decode(reply_ids), reply_ids)


@pytest.fixture(scope="session")
def adapter_dirs(scripted: ScriptedModel, tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("adapters")
    return {
        "veg": make_adapter(scripted.base_dir, root / "veg", seed=1),
        "alt": make_adapter(scripted.base_dir, root / "alt", seed=2),
    }


@pytest.fixture(scope="session")
def service(
    scripted: ScriptedModel, adapter_dirs: dict[str, Path], tmp_path_factory
) -> Iterator[RunningService]:
    """The real app on a loopback port, base 'base' and adapter 'veg'."""
    from services.chat.adapters import AdapterRegistry
    from services.chat.api import build_app
    from services.chat.backends.transformers_backend import TransformersBackend
    from services.chat.config import ChatSettings
    from services.common.process import free_port

    log_dir = tmp_path_factory.mktemp("logs")
    settings = ChatSettings(
        api_key=API_KEY,
        log_dir=log_dir,
        log_flush_rows=1,
        max_tokens_limit=400,
        default_max_tokens=64,
        torch_threads=1,
    )
    backend = TransformersBackend(
        scripted.base_dir,
        AdapterRegistry("base", max_adapters=4),
        max_pending=16,
        torch_threads=1,
    )
    app = build_app(settings, backend, {"veg": adapter_dirs["veg"]})
    port = free_port()
    server, thread = serve_in_thread(app, port)
    try:
        yield RunningService(f"http://127.0.0.1:{port}", app, backend, log_dir)
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@pytest.fixture()
def client(service: RunningService):
    import openai

    with openai.OpenAI(base_url=service.v1, api_key=API_KEY, max_retries=0) as c:
        yield c
