"""Fold a LoRA adapter into its base weights: ``rlaif chat merge``.

A server without LoRA support (or vLLM facing an adapter that saved whole
modules) can serve the result as an ordinary model. The folder gets the
merged weights, the generation config and the tokenizer with its chat
template, so it loads like the base did.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from services.chat.adapters import inspect_adapter

logger = logging.getLogger(__name__)

MERGE_MARKER = "rlaif_merge.json"


def merge_adapter(base: Path, adapter: Path, out: Path, *, dtype: str = "auto") -> Path:
    """Write base + adapter as one model to ``out``; return ``out``.

    The tokenizer comes from the adapter folder when it has one (a training
    run saves the tokenizer it trained with), else from the base.
    """
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    info = inspect_adapter(Path(adapter).name, adapter)
    torch_dtype = "auto" if dtype == "auto" else getattr(torch, dtype)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch_dtype)
    merged = PeftModel.from_pretrained(model, str(info.path)).merge_and_unload()

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    merged.save_pretrained(out)
    tokenizer_dir = (
        adapter if (Path(adapter) / "tokenizer_config.json").is_file() else base
    )
    AutoTokenizer.from_pretrained(tokenizer_dir).save_pretrained(out)
    (out / MERGE_MARKER).write_text(
        json.dumps({"base": str(Path(base).resolve()), "adapter": str(info.path)}),
        encoding="utf-8",
    )
    logger.info("merged adapter %s into %s: wrote %s", info.path, base, out)
    return out
