"""Builders for the chat tests: a scripted tiny Llama, adapters, a server.

The base model is built so that greedy decoding after the chat prompt emits
one known reply, token by token: every decoder layer's output projections
are zeroed (the residual stream is just the current token's embedding) and
the embedding and head encode "after token a comes token b". The reply
mixes accents and an emoji whose UTF-8 bytes are spread over several
byte-level tokens, so a stream that decoded token by token would show
U+FFFD. The adapters are random LoRA weights: their replies differ from the
base's and are computed independently with peft for comparison.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from rlaif.tiny_model import TinyLlamaShape, init_tiny_llama

API_KEY = "test-chat-key"
CORPUS = [
    "Voilà: crème brûlée, naïve piñata, jalapeño salsa 🥗 🍅 🌶️ café au lait.",
    "How do I cook lentils? Simmer them with cumin, garlic and tomato.",
    "Try a chickpea curry with rice and spinach, or a bean chili.",
    "Résumé: the soufflé à la française needs eggs; the tofu scramble does not.",
]
SHAPE = TinyLlamaShape(
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=2,
    num_attention_heads=2,
    num_key_value_heads=2,
    max_position_embeddings=512,
)
LORA_TARGETS = ["q_proj", "v_proj", "o_proj", "down_proj"]


def _byte_symbols() -> dict[int, str]:
    """GPT-2's byte-to-symbol table used by byte-level BPE."""
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    symbols = dict(zip(printable, printable, strict=True))
    extra = 0
    for byte in range(256):
        if byte not in symbols:
            symbols[byte] = 256 + extra
            extra += 1
    return {b: chr(c) for b, c in symbols.items()}


@dataclass(frozen=True)
class ScriptedModel:
    base_dir: Path
    reply: str
    reply_ids: list[int]


def script_reply(tokenizer) -> list[int]:
    """Token ids of the scripted reply, some characters one byte per token."""
    symbols = _byte_symbols()

    def raw(text: str) -> list[int]:
        return [tokenizer.convert_tokens_to_ids(symbols[b]) for b in text.encode()]

    def enc(text: str) -> list[int]:
        return tokenizer.encode(text, add_special_tokens=False)

    ids = (
        enc("Voil")
        + raw("à")
        + enc(" crème brûlée")
        + enc(" ")
        + raw("🥗")
        + enc(",")
        + enc("nai")
        + raw("\u0301")  # a combining acute accent, split over two tokens
        + enc("ve!")
    )
    # "after token a comes b" needs every token once, and none equal to the
    # newline that ends the prompt.
    assert len(set(ids)) == len(ids), tokenizer.convert_ids_to_tokens(ids)
    return ids


def scripted_llama(tokenizer, reply_ids: list[int]):
    model = init_tiny_llama(tokenizer, SHAPE, seed=0)
    newline = tokenizer.encode("\n", add_special_tokens=False)
    assert len(newline) == 1 and newline[0] not in reply_ids
    chain = newline + reply_ids + [tokenizer.eos_token_id]
    assert len(chain) <= SHAPE.hidden_size
    with torch.no_grad():
        for layer in model.model.layers:
            layer.self_attn.o_proj.weight.zero_()
            layer.mlp.down_proj.weight.zero_()
        embed = model.model.embed_tokens.weight
        head = model.lm_head.weight
        head.zero_()
        for dim, (token, successor) in enumerate(
            zip(chain[:-1], chain[1:], strict=True)
        ):
            embed[token].zero_()
            embed[token, dim] = 1.0
            head[successor, dim] = 10.0
    return model


def make_adapter(base_dir: Path, out: Path, seed: int, **lora_options) -> Path:
    """Save a LoRA adapter with random (non-zero) weights for ``base_dir``."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(base_dir)
    config = LoraConfig(
        r=4,
        lora_alpha=16,
        target_modules=LORA_TARGETS,
        init_lora_weights=False,
        **lora_options,
    )
    get_peft_model(model, config).save_pretrained(out)
    return out


def reference_reply(
    base_dir: Path,
    adapter_dir: Path | None,
    question: str,
    max_new_tokens: int,
    system: str | None = None,
) -> str:
    """Greedy reply computed with plain transformers + peft, no service code."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(base_dir)
    model = AutoModelForCausalLM.from_pretrained(base_dir)
    if adapter_dir is not None:
        model = PeftModel.from_pretrained(model, str(adapter_dir))
    turns = [{"role": "user", "content": question}]
    if system is not None:
        turns.insert(0, {"role": "system", "content": system})
    text = tokenizer.apply_chat_template(
        turns,
        add_generation_prompt=True,
        tokenize=False,
    )
    ids = tokenizer(text, add_special_tokens=False, return_tensors="pt")["input_ids"]
    with torch.inference_mode():
        out = model.generate(ids, max_new_tokens=max_new_tokens, do_sample=False)
    return tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True)


@dataclass
class RunningService:
    url: str
    app: object
    backend: object
    log_dir: Path

    @property
    def v1(self) -> str:
        return f"{self.url}/v1"


def serve_in_thread(app, port: int) -> tuple[object, threading.Thread]:
    import uvicorn

    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the chat service did not start")
        time.sleep(0.05)
    return server, thread
