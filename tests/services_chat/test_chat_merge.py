"""``rlaif chat merge`` writes a model equal to base + adapter."""

from __future__ import annotations

import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer

from rlaif.cli import main


def test_merged_model_gives_the_adapter_logits(scripted, adapter_dirs, tmp_path):
    out = tmp_path / "merged"

    code = main(
        [
            "chat",
            "merge",
            "--base",
            str(scripted.base_dir),
            "--adapter",
            str(adapter_dirs["veg"]),
            "--out",
            str(out),
        ]
    )

    assert code == 0
    ids = torch.tensor([[1, 5, 40, 41, 42, 6, 205]])
    base = AutoModelForCausalLM.from_pretrained(scripted.base_dir)
    with torch.inference_mode():
        expected = PeftModel.from_pretrained(base, str(adapter_dirs["veg"]))(ids).logits
        merged = AutoModelForCausalLM.from_pretrained(out)(ids).logits
    assert torch.allclose(merged, expected, atol=1e-4)
    assert not list(out.glob("adapter_config.json"))  # a plain model, no LoRA
    tokenizer = AutoTokenizer.from_pretrained(out)
    assert tokenizer.chat_template and tokenizer.eos_token == "</s>"
