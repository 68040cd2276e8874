"""Tiny Llama-architecture models and tokenizers built locally.

Machines here reach no model hub, so the CPU profile (and every test) builds
its policy from scratch: a byte-level BPE tokenizer trained with `tokenizers`
and a randomly initialised `LlamaForCausalLM` of a few layers. Both are
saved in the ordinary Hugging Face format, so peft, TRL, vLLM and the chat
service load them like any hub model.

The tokenizer carries a chat template with explicit role tokens. Pad, BOS and
EOS are three distinct tokens: a pad equal to EOS would mask EOS out of the
loss and give a tuned model that never stops.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

BOS, EOS, PAD, UNK = "<s>", "</s>", "<pad>", "<unk>"
ROLE_TOKENS = ("<|system|>", "<|user|>", "<|assistant|>")

# One BOS, a role token and a newline before each turn, EOS after each
# assistant turn; `add_generation_prompt` opens the assistant turn.
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{{ '<|' + message['role'] + '|>\n' + message['content'] }}"
    "{% if message['role'] == 'assistant' %}{{ eos_token }}{% endif %}"
    "{{ '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% endif %}"
)


def train_tokenizer(
    texts: Iterable[str], vocab_size: int = 2048
) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE tokenizer with our special tokens and template.

    Byte-level BPE can split a multi-byte character across tokens; the chat
    service's streaming has to cope with that (and tests that it does).
    """
    tokenizer = Tokenizer(models.BPE(unk_token=None))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[PAD, BOS, EOS, UNK, *ROLE_TOKENS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        unk_token=UNK,
        additional_special_tokens=list(ROLE_TOKENS),
        padding_side="left",
        model_max_length=512,
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast


@dataclass(frozen=True, kw_only=True)
class TinyLlamaShape:
    """Sizes of a tiny Llama; the defaults train in minutes on two cores."""

    hidden_size: int = 128
    intermediate_size: int = 384
    num_hidden_layers: int = 3
    num_attention_heads: int = 4
    num_key_value_heads: int = 4
    max_position_embeddings: int = 512


def init_tiny_llama(
    tokenizer: PreTrainedTokenizerFast,
    shape: TinyLlamaShape | None = None,
    seed: int = 0,
) -> LlamaForCausalLM:
    """A randomly initialised Llama whose special ids match `tokenizer`."""
    import torch

    shape = shape or TinyLlamaShape()
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=shape.hidden_size,
        intermediate_size=shape.intermediate_size,
        num_hidden_layers=shape.num_hidden_layers,
        num_attention_heads=shape.num_attention_heads,
        num_key_value_heads=shape.num_key_value_heads,
        max_position_embeddings=shape.max_position_embeddings,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.generation_config.bos_token_id = tokenizer.bos_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model


# The smallest shape the tests use: builds in well under a second.
MICRO_SHAPE = TinyLlamaShape(
    hidden_size=32,
    intermediate_size=64,
    num_hidden_layers=2,
    num_attention_heads=2,
    num_key_value_heads=2,
)


def save_tiny_llama(
    folder: Path,
    texts: Iterable[str],
    *,
    vocab_size: int = 2048,
    shape: TinyLlamaShape | None = None,
    model_max_length: int | None = None,
    seed: int = 0,
) -> tuple[PreTrainedTokenizerFast, LlamaForCausalLM]:
    """Train a tokenizer on `texts`, build a tiny Llama, save both to `folder`.

    `model_max_length` raises the tokenizer's limit for prompts longer than
    its default 512 tokens (a judge rubric in a small vocabulary, say).
    """
    tokenizer = train_tokenizer(texts, vocab_size=vocab_size)
    if model_max_length is not None:
        tokenizer.model_max_length = model_max_length
    model = init_tiny_llama(tokenizer, shape, seed=seed)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return tokenizer, model
