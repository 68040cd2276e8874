"""The transformers backend on its own: queueing, adapters, cancellation."""

from __future__ import annotations

import asyncio

import pytest
from chat_fixtures import reference_reply

from services.chat.adapters import AdapterRegistry
from services.chat.backends.base import GenerationRequest, SamplingSettings
from services.chat.backends.transformers_backend import TransformersBackend
from services.chat.errors import OverloadedError
from services.chat.protocol import ChatMessage
from services.chat.serving import encode_chat

QUESTION = "What should I cook tonight? Café or crème?"


def _request(backend, adapter=None, max_tokens=64, stop=()) -> GenerationRequest:
    messages = [ChatMessage(role="user", content=QUESTION)]
    return GenerationRequest(
        request_id="t",
        prompt_ids=encode_chat(backend.tokenizer, messages),
        adapter=adapter,
        sampling=SamplingSettings(
            max_tokens=max_tokens, temperature=0.0, stop=tuple(stop)
        ),
    )


async def _text(backend, request) -> tuple[str, str | None]:
    deltas = [d async for d in backend.generate(request)]
    return "".join(d.text for d in deltas), deltas[-1].finish_reason


def _backend(scripted, max_pending=8) -> TransformersBackend:
    return TransformersBackend(
        scripted.base_dir,
        AdapterRegistry("base", 4),
        max_pending=max_pending,
        torch_threads=1,
    )


def test_prompt_has_exactly_one_bos(scripted):
    backend = _backend(scripted)
    asyncio.run(backend.start({}))
    ids = _request(backend).prompt_ids
    bos = backend.tokenizer.bos_token_id

    assert ids[0] == bos and ids.count(bos) == 1
    asyncio.run(backend.close())


def test_unloading_the_last_adapter_leaves_the_base_then_reloads(
    scripted, adapter_dirs
):
    async def scenario() -> tuple[str, str]:
        backend = _backend(scripted)
        await backend.start({"veg": adapter_dirs["veg"]})
        with_adapter, _ = await _text(backend, _request(backend, "veg", 8))
        await backend.unload_adapter("veg")
        base, _ = await _text(backend, _request(backend))
        await backend.load_adapter("veg", adapter_dirs["veg"])  # wraps again
        again, _ = await _text(backend, _request(backend, "veg", 8))
        await backend.close()
        assert again == with_adapter
        return with_adapter, base

    with_adapter, base = asyncio.run(scenario())

    assert with_adapter == reference_reply(
        scripted.base_dir, adapter_dirs["veg"], QUESTION, 8
    )
    assert base == scripted.reply


def test_requests_beyond_the_queue_limit_are_refused(scripted):
    async def scenario() -> None:
        backend = _backend(scripted, max_pending=1)
        await backend.start({})
        running = backend.generate(_request(backend))
        with pytest.raises(OverloadedError, match="max_pending_requests=1"):
            backend.generate(_request(backend))
        async for _ in running:
            pass
        await _text(backend, _request(backend))  # the place is free again
        await backend.close()

    asyncio.run(scenario())


def test_generate_before_start_asks_to_retry(scripted):
    backend = _backend(scripted)

    request = GenerationRequest(
        request_id="t",
        prompt_ids=[1, 2, 3],
        adapter=None,
        sampling=SamplingSettings(max_tokens=4),
    )

    with pytest.raises(OverloadedError, match="still loading"):
        backend.generate(request)


def test_a_stop_sequence_ends_the_reply_before_it(scripted):
    async def scenario() -> tuple[str, str | None]:
        backend = _backend(scripted)
        await backend.start({})
        result = await _text(backend, _request(backend, stop=["crème"]))
        await backend.close()
        return result

    text, finish = asyncio.run(scenario())

    assert text == "Voilà " and finish == "stop"
