"""`rlaif bootstrap`: a tiny base policy trained from scratch on the corpus.

No model hub is reachable, so the CPU demo makes its own base policy: a
byte-level BPE tokenizer and a Llama of a few layers (`rlaif.tiny_model`)
trained on `data/food_qa.jsonl` with the chat template and the use case's
system prompt. The loss covers the answer and its EOS only: the model has to
learn to answer and to stop, not to predict the question. Each question of
the corpus has a vegetarian and a non-vegetarian answer, so the trained model
samples both, which gives PPO rewards with variance to learn from.

The output dir is an ordinary Hugging Face model dir (weights, tokenizer,
generation config with EOS and pad) plus `bootstrap.json` (settings, final
loss, seconds).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import random
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from rlaif.usecase import SYSTEM_PROMPT, chat_messages

logger = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class BootstrapSettings:
    """How big the model is and how long it trains; `quick()` for tests."""

    vocab_size: int = 1024
    hidden_size: int = 128
    intermediate_size: int = 384
    num_hidden_layers: int = 3
    num_attention_heads: int = 4
    steps: int = 500
    batch_size: int = 32
    lr: float = 3e-3
    warmup_steps: int = 30
    weight_decay: float = 0.01
    seed: int = 0
    max_examples: int | None = None

    @classmethod
    def quick(cls) -> BootstrapSettings:
        return cls(
            vocab_size=512,
            hidden_size=64,
            intermediate_size=192,
            num_hidden_layers=2,
            num_attention_heads=4,
            steps=120,
            batch_size=32,
            max_examples=1600,
        )


def encode_example(tokenizer, question: str, answer: str) -> tuple[list, list]:
    """Token ids of prompt + answer + EOS, and labels masking the prompt.

    The prompt is rendered exactly as the trainer and the evaluation render
    it (chat template with the generation prompt, no extra special tokens),
    so the base model sees the same prefix at every stage.
    """
    prompt = tokenizer.apply_chat_template(
        chat_messages(question), tokenize=False, add_generation_prompt=True
    )
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    answer_ids = tokenizer(answer, add_special_tokens=False)["input_ids"]
    answer_ids = answer_ids + [tokenizer.eos_token_id]
    return prompt_ids + answer_ids, [-100] * len(prompt_ids) + answer_ids


def _batches(encoded: list, settings: BootstrapSettings, pad_id: int):
    """Endless shuffled right-padded batches (training only: no generation)."""
    import torch

    rng = random.Random(settings.seed)
    order: list[int] = []
    while True:
        if len(order) < settings.batch_size:
            order += rng.sample(range(len(encoded)), len(encoded))
        chosen, order = order[: settings.batch_size], order[settings.batch_size :]
        width = max(len(encoded[i][0]) for i in chosen)
        ids = torch.full((len(chosen), width), pad_id)
        labels = torch.full((len(chosen), width), -100)
        mask = torch.zeros((len(chosen), width), dtype=torch.long)
        for row, index in enumerate(chosen):
            input_ids, label_ids = encoded[index]
            ids[row, : len(input_ids)] = torch.tensor(input_ids)
            labels[row, : len(label_ids)] = torch.tensor(label_ids)
            mask[row, : len(input_ids)] = 1
        yield ids, labels, mask


def _lr_at(step: int, settings: BootstrapSettings) -> float:
    """Linear warm-up, then cosine decay to a tenth of the peak."""
    if step < settings.warmup_steps:
        return settings.lr * (step + 1) / settings.warmup_steps
    progress = (step - settings.warmup_steps) / max(
        1, settings.steps - settings.warmup_steps
    )
    return settings.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def bootstrap(
    corpus: Path, out_dir: Path, settings: BootstrapSettings, progress: bool = True
) -> dict:
    """Train tokenizer and model on `corpus`, save both to `out_dir`."""
    import torch
    from tqdm import tqdm

    from rlaif.corpus import read_corpus
    from rlaif.tiny_model import TinyLlamaShape, init_tiny_llama, train_tokenizer

    started = time.monotonic()
    torch.manual_seed(settings.seed)
    examples = read_corpus(corpus)
    if settings.max_examples:
        examples = examples[: settings.max_examples]

    # Tokenizer: trained on everything the model reads or writes, the system
    # prompt as often as it occurs (else its words split into letters and
    # every sequence carries ~45 prompt tokens instead of ~17).
    texts = [f"{SYSTEM_PROMPT}\n{e.question}\n{e.answer}" for e in examples]
    tokenizer = train_tokenizer(texts, vocab_size=settings.vocab_size)
    encoded = [encode_example(tokenizer, e.question, e.answer) for e in examples]

    shape = TinyLlamaShape(
        hidden_size=settings.hidden_size,
        intermediate_size=settings.intermediate_size,
        num_hidden_layers=settings.num_hidden_layers,
        num_attention_heads=settings.num_attention_heads,
        num_key_value_heads=settings.num_attention_heads,
    )
    model = init_tiny_llama(tokenizer, shape, seed=settings.seed)
    model.train()
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay
    )

    # Answer-only language-model loss on shuffled right-padded batches.
    batches = _batches(encoded, settings, tokenizer.pad_token_id)
    losses: list[float] = []
    bar = tqdm(
        range(settings.steps), desc="bootstrap", disable=not progress, leave=False
    )
    for step in bar:
        for group in optimizer.param_groups:
            group["lr"] = _lr_at(step, settings)
        ids, labels, mask = next(batches)
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        losses.append(loss.item())
        if step % 10 == 0:
            bar.set_postfix(loss=f"{loss.item():.3f}")
    bar.close()

    model.eval()
    model.generation_config.max_new_tokens = 64
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    tail = losses[-20:]
    info = {
        "corpus": str(corpus),
        "examples": len(examples),
        "parameters": sum(p.numel() for p in model.parameters()),
        "settings": asdict(settings),
        "system_prompt": SYSTEM_PROMPT,
        "loss_first": losses[0],
        "loss_last": sum(tail) / len(tail),
        "seconds": round(time.monotonic() - started, 1),
    }
    (out_dir / "bootstrap.json").write_text(json.dumps(info, indent=2) + "\n")
    return info


def _handle(args: argparse.Namespace) -> int:
    import torch

    torch.set_num_threads(args.threads)
    settings = BootstrapSettings.quick() if args.quick else BootstrapSettings()
    overrides = {
        key: value
        for key, value in (("steps", args.steps), ("seed", args.seed))
        if value is not None
    }
    settings = BootstrapSettings(**{**asdict(settings), **overrides})
    if not args.corpus.is_file():
        sys.stderr.write(
            f"rlaif bootstrap: corpus {str(args.corpus)!r} not found; "
            "write it with `python -m rlaif.corpus --out data/food_qa.jsonl`\n"
        )
        return 2
    info = bootstrap(args.corpus, args.out, settings)
    sys.stdout.write(
        f"bootstrap: {info['parameters']:,} parameters, loss "
        f"{info['loss_first']:.2f} -> {info['loss_last']:.2f} in "
        f"{info['seconds']}s -> {args.out}\n"
    )
    return 0


def register(subparsers) -> None:
    """Add `rlaif bootstrap` to the `rlaif` parser."""
    parser = subparsers.add_parser(
        "bootstrap", help="Train a tiny base policy on the food Q&A corpus."
    )
    parser.add_argument("--corpus", type=Path, default=Path("data/food_qa.jsonl"))
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument(
        "--quick", action="store_true", help="A smaller model, a few seconds."
    )
    parser.add_argument("--steps", type=int, help="Override the training steps.")
    parser.add_argument("--seed", type=int, help="Override the seed (default 0).")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads (default 1: the same numbers on every machine, "
        "and no slowdown when other processes share the cores).",
    )
    parser.set_defaults(handler=_handle)
