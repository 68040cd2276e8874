"""DPO training on the tiny policy: config reaches TRL, a few real steps."""

from __future__ import annotations

import json
import math

import pytest
import yaml

from rlaif.cli import main
from trainer.config import config_from_dict
from trainer.dpo import DPORun
from trainer.errors import ConfigError
from trainer.pairs import PreferencePair, write_pairs

PAIRS = [
    ("What can I cook tonight?", "A chickpea curry.", "Grilled chicken thighs."),
    ("How do I make a quick soup?", "Lentils and carrots.", "Beef and onions."),
    ("Lunch?", "Tofu stir fry with ginger.", "Salmon with dill."),
    ("Any idea for a picnic?", "Mushroom risotto.", "Bacon rolls."),
]


@pytest.fixture
def pairs_file(tmp_path):
    pairs = [
        PreferencePair(prompt=q, chosen=c, rejected=r, source="llm")
        for q, c, r in PAIRS
    ]
    return write_pairs(tmp_path / "pairs.parquet", pairs)


def _dpo_config(tiny_config, pairs_file, **dpo):
    raw = tiny_config("dpo", dpo={"pairs": str(pairs_file), **dpo})
    raw["optim"].update(micro_batch_size=2, rollout_batch_size=4)
    return raw


def test_config_settings_reach_the_dpo_trainer(tiny_config, pairs_file, tmp_path):
    from trainer.models import load_tokenizer
    from trainer.prompts import render_prompts

    raw = _dpo_config(
        tiny_config,
        pairs_file,
        beta=0.37,
        loss_type="robust",
        label_smoothing=0.1,
        max_length=200,
        sft_weight=0.5,
    )
    raw["optim"].update(lr=3e-4, steps=7, weight_decay=0.01, max_grad_norm=0.5)
    raw["lora"].update(r=2, alpha=6)
    raw["prompts"]["system_prompt"] = "You cook."
    config = config_from_dict(raw)
    tokenizer = load_tokenizer(config.model, config.tokenizer)

    pairs = [PreferencePair(prompt=q, chosen=c, rejected=r) for q, c, r in PAIRS]
    trainer = DPORun(config, tokenizer, pairs, tmp_path, callbacks=[]).trainer

    args = trainer.args
    assert (args.beta, args.label_smoothing) == (0.37, 0.1)
    assert (args.loss_type, args.loss_weights) == (["robust", "sft"], [1.0, 0.5])
    assert (args.learning_rate, args.max_steps, args.max_length) == (3e-4, 7, 200)
    assert (args.weight_decay, args.max_grad_norm) == (0.01, 0.5)
    assert args.per_device_train_batch_size == 2
    assert args.gradient_accumulation_steps == 2
    assert not args.bf16 and not args.gradient_checkpointing
    assert trainer.ref_model is None  # the reference is the adapter disabled
    lora = trainer.model.peft_config["default"]
    assert (lora.r, lora.lora_alpha) == (2, 6)
    assert set(lora.target_modules) == {"q_proj", "v_proj"}
    # The prompts are the trainer's own rendering (system prompt included).
    rendered = render_prompts(tokenizer, [q for q, _, _ in PAIRS], "You cook.", 256)
    assert trainer.train_dataset["prompt_ids"] == [list(p.input_ids) for p in rendered]
    first = trainer.train_dataset[0]
    assert tokenizer.decode(first["chosen_ids"]).startswith("A chickpea curry.</s>")


def test_a_few_dpo_steps_through_rlaif_train_need_no_judge(
    tiny_config, pairs_file, tmp_path
):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, GenerationConfig

    raw = _dpo_config(tiny_config, pairs_file, beta=0.1)
    raw["optim"].update(lr=5e-2, steps=3)
    config_path = tmp_path / "dpo.yaml"
    config_path.write_text(yaml.safe_dump(raw))
    out = tmp_path / "run"

    code = main(["train", "--config", str(config_path), "--out", str(out)])

    assert code == 0
    rows = [
        json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()
    ]
    assert [r["step"] for r in rows] == [1, 2, 3]
    assert all(math.isfinite(v) for r in rows for v in r.values())
    # Step 1 is scored before any update: policy == reference, so the
    # implicit rewards are 0 and the loss is log 2. Training moves them.
    assert abs(rows[0]["rewards/margins"]) < 1e-6
    assert rows[0]["loss/policy"] == pytest.approx(math.log(2), abs=1e-4)
    assert rows[-1]["rewards/margins"] > 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["algo"] == "dpo" and summary["status"] == "completed"
    assert summary["steps"] == 3 and summary["pairs"] == 4
    assert summary["margin_last"] == rows[-1]["rewards/margins"]
    generation = GenerationConfig.from_pretrained(out)
    assert generation.pad_token_id not in (None, generation.eos_token_id)
    base = AutoModelForCausalLM.from_pretrained(raw["model"]["path"])
    PeftModel.from_pretrained(base, out)  # loads without error


def test_dpo_without_a_pairs_file_names_the_fix(tiny_config, tmp_path):
    from trainer.run import train

    config = config_from_dict(tiny_config("dpo"))

    with pytest.raises(ConfigError, match="rlaif dpo pairs"):
        train(config, tmp_path / "run")


def test_dpo_refuses_an_adapter_dir_as_base_and_names_the_merge(
    tiny_config, pairs_file, tmp_path, capsys
):
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text("{}")
    raw = _dpo_config(tiny_config, pairs_file)
    raw["model"]["path"] = str(adapter)
    config_path = tmp_path / "dpo.yaml"
    config_path.write_text(yaml.safe_dump(raw))

    code = main(["train", "--config", str(config_path), "--out", str(tmp_path / "r")])

    assert code == 2
    assert "rlaif chat merge" in capsys.readouterr().err
