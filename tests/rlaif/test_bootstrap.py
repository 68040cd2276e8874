import json

import pytest

from rlaif.bootstrap import encode_example
from rlaif.usecase import SYSTEM_PROMPT


@pytest.fixture(scope="module")
def tokenizer(tiny_policy):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_policy)


def test_saved_policy_has_distinct_special_tokens_and_stops_at_eos(tiny_policy):
    from transformers import AutoModelForCausalLM, GenerationConfig

    model = AutoModelForCausalLM.from_pretrained(tiny_policy)
    generation = GenerationConfig.from_pretrained(tiny_policy)
    special = {model.config.pad_token_id, model.config.bos_token_id}
    assert len(special | {model.config.eos_token_id}) == 3
    assert generation.eos_token_id == model.config.eos_token_id
    assert generation.pad_token_id == model.config.pad_token_id
    info = json.loads((tiny_policy / "bootstrap.json").read_text())
    assert info["loss_last"] < info["loss_first"]
    assert info["system_prompt"] == SYSTEM_PROMPT


def test_loss_covers_the_answer_and_eos_only(tokenizer):
    ids, labels = encode_example(tokenizer, "What is tempeh?", "Fermented soybeans.")
    answer = tokenizer("Fermented soybeans.", add_special_tokens=False)["input_ids"]
    n_prompt = len(ids) - len(answer) - 1
    assert labels[:n_prompt] == [-100] * n_prompt
    assert labels[n_prompt:] == answer + [tokenizer.eos_token_id]
    assert ids[-1] == tokenizer.eos_token_id
    assert ids.count(tokenizer.bos_token_id) == 1


def test_prompt_is_rendered_as_the_trainer_renders_it(tokenizer):
    from trainer.config import DEFAULT_SYSTEM_PROMPT
    from trainer.prompts import render_prompts

    assert DEFAULT_SYSTEM_PROMPT == SYSTEM_PROMPT
    question = "Which herbs suit a tomato soup?"
    (rendered,) = render_prompts(tokenizer, [question], SYSTEM_PROMPT, 256)
    ids, labels = encode_example(tokenizer, question, "Basil.")
    n_prompt = labels.index(next(label for label in labels if label != -100))
    assert tuple(ids[:n_prompt]) == rendered.input_ids
