"""Loading the policy, tokenizer, LoRA config and PPO value model.

Kept apart from the algorithms so DPO, evaluation and the chat service load
models the same way. Heavy imports stay inside the functions.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from trainer.config import LoraSection, ModelConfig, TokenizerConfig
from trainer.errors import ConfigError

if TYPE_CHECKING:
    from peft import LoraConfig
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

logger = logging.getLogger(__name__)

# Reentrant checkpointing drops the gradients of a frozen base's LoRA layers
# unless the inputs require grad; the non-reentrant kind needs no trick.
NON_REENTRANT = {"use_reentrant": False}


def torch_dtype(name: str):
    import torch

    return {"float32": torch.float32, "bfloat16": torch.bfloat16}.get(
        name, torch.float16
    )


def load_tokenizer(
    model: ModelConfig, tokenizer: TokenizerConfig
) -> PreTrainedTokenizerBase:
    """The policy tokenizer, left-padding, with a pad distinct from EOS.

    A pad equal to EOS makes the trainers mask EOS out of the loss, and the
    tuned model never learns to stop; we refuse it and name the fix.
    """
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tokenizer.path or model.path)
    tok.padding_side = "left"
    if tokenizer.pad_token is not None:
        if tokenizer.pad_token not in tok.get_vocab():
            raise ConfigError(
                f"tokenizer.pad_token={tokenizer.pad_token!r} is not in the "
                "vocabulary: pick an existing token such as the unk token"
            )
        tok.pad_token = tokenizer.pad_token
    if tok.eos_token_id is None:
        raise ConfigError(f"the tokenizer at {model.path!r} has no EOS token")
    if tok.pad_token_id is None or tok.pad_token_id == tok.eos_token_id:
        raise ConfigError(
            f"tokenizer.pad_token={tok.pad_token!r} is missing or equals EOS: set "
            "tokenizer.pad_token to a distinct existing token (e.g. '<unk>')"
        )
    if tok.chat_template is None:
        raise ConfigError(
            f"the tokenizer at {model.path!r} has no chat template; prompts are "
            "rendered with it"
        )
    return tok


def load_policy(model: ModelConfig, tokenizer: PreTrainedTokenizerBase):
    """The base causal LM, with EOS/pad set so sampling can stop."""
    from transformers import AutoModelForCausalLM

    policy = AutoModelForCausalLM.from_pretrained(
        model.path, dtype=torch_dtype(model.dtype)
    )
    configure_generation(policy, tokenizer)
    if model.gradient_checkpointing:
        policy.gradient_checkpointing_enable(NON_REENTRANT)
    return policy


def configure_generation(model: PreTrainedModel, tokenizer) -> None:
    """EOS and pad ids on the model config and generation config, no min_length.

    Nothing forces a minimum length: EOS must stay sampleable from the first
    token, or the model learns it cannot stop.
    """
    for config in (model.config, model.generation_config):
        config.eos_token_id = tokenizer.eos_token_id
        config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.min_length = 0
    model.generation_config.min_new_tokens = None


def lora_config(section: LoraSection, task_type: str = "CAUSAL_LM") -> LoraConfig:
    from peft import LoraConfig

    return LoraConfig(
        r=section.r,
        lora_alpha=section.alpha,
        lora_dropout=section.dropout,
        target_modules=list(section.target_modules),
        modules_to_save=section.modules_to_save,
        bias="none",
        task_type=task_type,
    )


def load_value_model(model: ModelConfig, tokenizer, lora: LoraSection | None):
    """PPO's critic: the base weights with a fresh scalar head.

    With `lora` given, the backbone is frozen and gets its own LoRA adapter,
    so the critic's training state is the adapter and head only.
    """
    from transformers import AutoModelForSequenceClassification

    value = AutoModelForSequenceClassification.from_pretrained(
        model.path, num_labels=1, dtype=torch_dtype(model.dtype)
    )
    value.config.pad_token_id = tokenizer.pad_token_id
    if model.gradient_checkpointing:
        # TRL only checkpoints the policy; the critic's activations count too.
        value.gradient_checkpointing_enable(NON_REENTRANT)
    if lora is not None:
        from peft import get_peft_model

        prefix = value.base_model_prefix
        backbone = get_peft_model(getattr(value, prefix), lora_config(lora, None))
        setattr(value, prefix, backbone)
    return value
