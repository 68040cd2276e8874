"""The training config: one YAML shape for PPO, GRPO, RLOO (and DPO).

Every section is a small dataclass whose fields carry their help text in
`metadata["help"]`; `__post_init__` checks the values and raises
`ConfigError` naming the field, the bad value and the fix. `load_config`
reads a YAML file, applies `--set section.key=value` overrides and refuses
unknown keys (a typo silently ignored is a run wasted).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from rlaif.usecase import SYSTEM_PROMPT as DEFAULT_SYSTEM_PROMPT
from trainer.errors import ConfigError

ALGORITHMS = ("ppo", "grpo", "rloo", "dpo")


def _help(text: str, default: Any = dataclasses.MISSING, **kwargs: Any) -> Any:
    """A dataclass field with help text (as TRL's configs do)."""
    if isinstance(default, list | dict):
        value = default
        return field(
            default_factory=lambda: type(value)(value), metadata={"help": text}
        )
    return field(default=default, metadata={"help": text}, **kwargs)


def _fail(section: str, name: str, value: Any, fix: str) -> ConfigError:
    return ConfigError(f"{section}.{name}={value!r} is invalid: {fix}")


def _positive(section: str, **values: float) -> None:
    for name, value in values.items():
        if value is None or value <= 0:
            raise _fail(section, name, value, "use a number greater than 0")


@dataclass(kw_only=True)
class ModelConfig:
    path: str = _help("Hugging Face model dir (or hub id on GPU machines).", "")
    dtype: str = _help("Weights dtype: float32, bfloat16 or float16.", "float32")
    gradient_checkpointing: bool = _help("Trade compute for activation memory.", False)

    def __post_init__(self) -> None:
        if not self.path:
            raise _fail("model", "path", self.path, "set the policy model dir")
        if self.dtype not in ("float32", "bfloat16", "float16"):
            raise _fail("model", "dtype", self.dtype, "use float32|bfloat16|float16")


@dataclass(kw_only=True)
class TokenizerConfig:
    path: str | None = _help("Tokenizer dir; defaults to model.path.", None)
    pad_token: str | None = _help(
        "Pad token to use when the tokenizer has none or pads with EOS "
        "(e.g. '<unk>' for Llama-2). Pad must differ from EOS, or EOS gets "
        "masked out and the tuned model never stops.",
        None,
    )


@dataclass(kw_only=True)
class LoraSection:
    r: int = _help("LoRA rank.", 8)
    alpha: int = _help("LoRA alpha (scale = alpha / r).", 32)
    dropout: float = _help("LoRA dropout.", 0.05)
    target_modules: list[str] = _help(
        "Module names that get adapters.",
        ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    )
    modules_to_save: list[str] | None = _help(
        "Extra fully trained modules. Off by default: vLLM refuses adapters "
        "that carry lm_head or embed_tokens.",
        None,
    )

    def __post_init__(self) -> None:
        _positive("lora", r=self.r, alpha=self.alpha)
        if not 0 <= self.dropout < 1:
            raise _fail("lora", "dropout", self.dropout, "use a value in [0, 1)")
        if not self.target_modules:
            raise _fail("lora", "target_modules", self.target_modules, "name modules")


@dataclass(kw_only=True)
class GenerationConfig:
    max_new_tokens: int = _help("Longest response in tokens.", 48)
    temperature: float = _help("Sampling temperature.", 1.0)
    top_p: float = _help("Nucleus sampling; PPO supports only 1.0.", 1.0)

    def __post_init__(self) -> None:
        _positive("generation", max_new_tokens=self.max_new_tokens)
        _positive("generation", temperature=self.temperature)
        if not 0 < self.top_p <= 1:
            raise _fail("generation", "top_p", self.top_p, "use a value in (0, 1]")


@dataclass(kw_only=True)
class OptimConfig:
    lr: float = _help("Learning rate (0 is allowed: a no-op run, for tests).", 1e-3)
    lr_scheduler: str = _help("transformers scheduler name.", "constant")
    steps: int = _help("Optimisation steps (one rollout batch each).", 20)
    rollout_batch_size: int = _help(
        "Responses generated and scored per step and process.", 16
    )
    micro_batch_size: int = _help("Rows per forward/backward pass.", 8)
    weight_decay: float = _help("AdamW weight decay.", 0.0)
    max_grad_norm: float = _help("Gradient clipping norm.", 1.0)
    seed: int = _help("Random seed.", 0)
    torch_threads: int | None = _help(
        "CPU threads for torch (null: torch's default). On a small shared CPU "
        "1 is often several times faster than oversubscribing cores.",
        None,
    )

    def __post_init__(self) -> None:
        if self.lr < 0 or not math.isfinite(self.lr):
            raise _fail("optim", "lr", self.lr, "use a finite value >= 0")
        _positive(
            "optim",
            steps=self.steps,
            rollout_batch_size=self.rollout_batch_size,
            micro_batch_size=self.micro_batch_size,
        )
        if self.rollout_batch_size % self.micro_batch_size:
            raise _fail(
                "optim",
                "rollout_batch_size",
                self.rollout_batch_size,
                f"use a multiple of optim.micro_batch_size={self.micro_batch_size}",
            )


@dataclass(kw_only=True)
class KLConfig:
    kl_coef: float = _help("Weight of the KL penalty to the reference.", 0.05)
    estimator: str = _help("KL estimator: k1 or k3.", "k1")

    def __post_init__(self) -> None:
        if self.kl_coef < 0:
            raise _fail("kl", "kl_coef", self.kl_coef, "use a value >= 0")
        if self.estimator not in ("k1", "k3"):
            raise _fail("kl", "estimator", self.estimator, "use k1 or k3")


@dataclass(kw_only=True)
class PPOSection:
    num_ppo_epochs: int = _help("PPO epochs over each rollout batch.", 1)
    num_mini_batches: int = _help("Mini-batches per PPO epoch.", 1)
    cliprange: float = _help("Policy ratio clip.", 0.2)
    cliprange_value: float = _help("Value clip.", 0.2)
    vf_coef: float = _help("Value loss weight.", 0.1)
    gamma: float = _help("Discount.", 1.0)
    lam: float = _help("GAE lambda.", 0.95)
    whiten_rewards: bool = _help("Whiten rewards (needs mini-batches >= 8).", False)
    value_model: str | None = _help(
        "Critic weights (default: model.path). A smaller model with the same "
        "tokenizer (e.g. TinyLlama-1.1B for Llama-2) saves a full 7B copy.",
        None,
    )
    value_lora: bool = _help(
        "Train the value model as LoRA + score head instead of fully "
        "(saves the 16 bytes/parameter of a full copy's training state).",
        False,
    )

    def __post_init__(self) -> None:
        _positive(
            "ppo",
            num_ppo_epochs=self.num_ppo_epochs,
            num_mini_batches=self.num_mini_batches,
        )


@dataclass(kw_only=True)
class GroupConfig:
    """GRPO and RLOO share their knobs: groups of completions per prompt."""

    num_generations: int = _help("Completions per prompt (the group).", 4)
    epsilon: float = _help("Policy ratio clip.", 0.2)
    scale_rewards: str = _help("GRPO: group | batch | none.", "group")
    loss_type: str = _help("GRPO loss type (TRL names).", "dapo")

    def __post_init__(self) -> None:
        if self.num_generations < 2:
            raise _fail(
                "grpo/rloo", "num_generations", self.num_generations, "use at least 2"
            )


DPO_LOSS_TYPES = ("sigmoid", "ipo", "hinge", "robust")


@dataclass(kw_only=True)
class DPOSection:
    """Offline DPO: pair building (`rlaif dpo pairs`) and training."""

    beta: float = _help(
        "DPO beta: how far the policy may move from the reference (the base "
        "with its adapter disabled); higher stays closer.",
        0.1,
    )
    pairs: str | None = _help(
        "Pairs file to train on: .parquet or .jsonl rows {prompt, chosen, "
        "rejected, [chosen_score, rejected_score, judge]}; prompt is the "
        "question, rendered with prompts.system_prompt and the chat template.",
        None,
    )
    loss_type: str = _help(f"TRL loss type: {' | '.join(DPO_LOSS_TYPES)}.", "sigmoid")
    label_smoothing: float = _help(
        "Probability that a pair's label is wrong (robust/cDPO); 0 trusts the judge.",
        0.0,
    )
    sft_weight: float = _help(
        "Weight of an added NLL loss on the chosen answer (RPO); > 0 keeps "
        "the chosen answers likely, and with them EOS, where plain DPO can "
        "lower both answers' likelihood and stop ending its answers.",
        0.0,
    )
    max_length: int = _help("Prompt + answer tokens kept per sequence.", 1024)
    precompute_ref_log_probs: bool = _help(
        "Compute the reference log-probs once before training (saves a "
        "forward pass per step when pairs are reused over epochs).",
        False,
    )
    num_samples: int = _help("rlaif dpo pairs: answers sampled per prompt (K).", 4)
    margin: float = _help(
        "rlaif dpo pairs: smallest judge score gap between best and worst "
        "answer that makes a pair; a smaller gap skips the prompt.",
        0.2,
    )
    chosen_min_score: float | None = _help(
        "rlaif dpo pairs: the chosen answer must score at least this (e.g. 0.7 "
        "as the original system did); null: no bound.",
        None,
    )
    rejected_max_score: float | None = _help(
        "rlaif dpo pairs: the rejected answer must score at most this (e.g. "
        "0.3); null: no bound.",
        None,
    )
    sample_batch_size: int = _help(
        "rlaif dpo pairs: prompts sampled per generate call.", 16
    )

    def __post_init__(self) -> None:
        _positive("dpo", beta=self.beta, max_length=self.max_length)
        _positive("dpo", sample_batch_size=self.sample_batch_size)
        if self.sft_weight < 0 or not math.isfinite(self.sft_weight):
            raise _fail("dpo", "sft_weight", self.sft_weight, "use a value >= 0")
        if self.loss_type not in DPO_LOSS_TYPES:
            raise _fail(
                "dpo", "loss_type", self.loss_type, f"use {' | '.join(DPO_LOSS_TYPES)}"
            )
        if not 0 <= self.label_smoothing < 0.5:
            raise _fail(
                "dpo",
                "label_smoothing",
                self.label_smoothing,
                "use a value in [0, 0.5)",
            )
        if self.num_samples < 2:
            raise _fail(
                "dpo", "num_samples", self.num_samples, "use at least 2 to compare"
            )
        if not 0 <= self.margin < 1:
            raise _fail("dpo", "margin", self.margin, "use a score gap in [0, 1)")
        for name in ("chosen_min_score", "rejected_max_score"):
            value = getattr(self, name)
            if value is not None and not 0 < value < 1:
                raise _fail("dpo", name, value, "use a score in (0, 1) or null")


@dataclass(kw_only=True)
class JudgeConfig:
    urls: list[str] = _help("Judge base URLs, used round-robin.", [])
    rubric: str = _help("Rubric name the judge scores with.", "vegetarian")
    timeout_s: float = _help("Per-request timeout.", 30.0)
    max_concurrency: int = _help("Requests in flight at once.", 4)
    max_batch: int = _help("Texts per request; bigger batches are chunked.", 32)
    max_downtime_s: float = _help(
        "Give up (checkpoint and stop) when every URL stayed down this long.", 60.0
    )
    retry_initial_s: float = _help("First backoff delay.", 0.5)
    retry_max_s: float = _help("Largest backoff delay.", 8.0)
    api_key_env: str | None = _help("Env var holding the judge API key.", None)
    invalid_policy: str = _help(
        "What happens to a response still invalid after one retry: 'drop' "
        "(GRPO/RLOO leave it out) or 'penalty' (reward = invalid_penalty).",
        "penalty",
    )
    invalid_penalty: float = _help("Reward given to an invalid score.", -3.0)
    max_invalid_rate: float = _help(
        "Stop when the run's share of invalid scores passes this.", 0.05
    )
    invalid_rate_min_samples: int = _help(
        "Scored responses needed before max_invalid_rate is enforced.", 32
    )

    def __post_init__(self) -> None:
        _positive(
            "judge",
            timeout_s=self.timeout_s,
            max_concurrency=self.max_concurrency,
            max_batch=self.max_batch,
            max_downtime_s=self.max_downtime_s,
        )
        if self.invalid_policy not in ("drop", "penalty"):
            raise _fail(
                "judge", "invalid_policy", self.invalid_policy, "use drop|penalty"
            )
        if not 0 <= self.max_invalid_rate <= 1:
            raise _fail(
                "judge",
                "max_invalid_rate",
                self.max_invalid_rate,
                "use a value in [0, 1]",
            )


@dataclass(kw_only=True)
class PromptsConfig:
    train: str = _help("Questions: .txt (one per line) or .jsonl {question}.", "")
    system_prompt: str = _help("System prompt of the use case.", DEFAULT_SYSTEM_PROMPT)
    max_prompt_tokens: int = _help("Longer rendered prompts are skipped.", 256)
    limit: int | None = _help("Use only the first N questions.", None)

    def __post_init__(self) -> None:
        if not self.train:
            raise _fail("prompts", "train", self.train, "set the questions file")


@dataclass(kw_only=True)
class LoggingConfig:
    tensorboard: bool = _help("Write TensorBoard events under <out>/tensorboard.", True)
    prometheus_port: int | None = _help(
        "Serve training metrics on this port while running (0: any free port, "
        "null: off).",
        None,
    )
    samples_every: int = _help("Keep samples of every Nth step.", 1)
    samples_per_step: int = _help("Rows of samples.parquet per kept step.", 8)


@dataclass(kw_only=True)
class CheckpointConfig:
    every: int = _help("Checkpoint every N steps (0: only at the end).", 10)
    keep: int = _help("Checkpoints kept (oldest removed first).", 2)

    def __post_init__(self) -> None:
        if self.every < 0:
            raise _fail("checkpoints", "every", self.every, "use a value >= 0")
        _positive("checkpoints", keep=self.keep)


@dataclass(kw_only=True)
class TrainConfig:
    algo: str = _help("ppo | grpo | rloo | dpo.", "ppo")
    model: ModelConfig = _help("Policy model.")
    tokenizer: TokenizerConfig = _help("Tokenizer.", None)
    lora: LoraSection = _help("LoRA adapter.", None)
    generation: GenerationConfig = _help("Sampling.", None)
    optim: OptimConfig = _help("Optimisation.", None)
    kl: KLConfig = _help("KL penalty.", None)
    ppo: PPOSection = _help("PPO only.", None)
    grpo: GroupConfig = _help("GRPO only.", None)
    rloo: GroupConfig = _help("RLOO only.", None)
    dpo: DPOSection = _help("DPO only.", None)
    judge: JudgeConfig = _help("Judge client.", None)
    missing_eos_penalty: float = _help(
        "Subtracted from the reward of a response that never reached EOS.", 1.0
    )
    prompts: PromptsConfig = _help("Training prompts.")
    logging: LoggingConfig = _help("Metrics and samples.", None)
    checkpoints: CheckpointConfig = _help("Checkpoints.", None)

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            if getattr(self, f.name) is None and f.name in _SECTIONS:
                setattr(self, f.name, _SECTIONS[f.name]())
        if self.algo not in ALGORITHMS:
            raise _fail("", "algo", self.algo, f"use one of {', '.join(ALGORITHMS)}")
        if self.missing_eos_penalty < 0:
            raise _fail("", "missing_eos_penalty", self.missing_eos_penalty, "use >= 0")
        self._check_algorithm_fit()

    def _check_algorithm_fit(self) -> None:
        """Combinations that each field alone cannot reject."""
        if self.algo == "ppo":
            if self.judge.invalid_policy == "drop":
                raise _fail(
                    "judge",
                    "invalid_policy",
                    "drop",
                    "PPO trains on fixed-size batches and cannot drop a sample; "
                    "use 'penalty'",
                )
            if self.generation.top_p != 1.0:
                raise _fail(
                    "generation",
                    "top_p",
                    self.generation.top_p,
                    "TRL's PPO samples with top_p=1.0 only; set 1.0",
                )
            local = self.optim.rollout_batch_size
            if local % self.ppo.num_mini_batches:
                raise _fail(
                    "ppo",
                    "num_mini_batches",
                    self.ppo.num_mini_batches,
                    f"must divide optim.rollout_batch_size={local}",
                )
        if self.algo in ("grpo", "rloo"):
            group = self.group
            if self.optim.rollout_batch_size % group.num_generations:
                raise _fail(
                    self.algo,
                    "num_generations",
                    group.num_generations,
                    "must divide optim.rollout_batch_size="
                    f"{self.optim.rollout_batch_size}",
                )

    @property
    def group(self) -> GroupConfig:
        """The GRPO or RLOO section, whichever algo is selected."""
        return self.rloo if self.algo == "rloo" else self.grpo


_SECTIONS: dict[str, type] = {
    "model": ModelConfig,
    "tokenizer": TokenizerConfig,
    "lora": LoraSection,
    "generation": GenerationConfig,
    "optim": OptimConfig,
    "kl": KLConfig,
    "ppo": PPOSection,
    "grpo": GroupConfig,
    "rloo": GroupConfig,
    "dpo": DPOSection,
    "judge": JudgeConfig,
    "prompts": PromptsConfig,
    "logging": LoggingConfig,
    "checkpoints": CheckpointConfig,
}


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply `section.key=value` strings; values are parsed as YAML scalars."""
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set {item!r} is invalid: use section.key=value")
        node = raw
        *parents, leaf = key.strip().split(".")
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {item!r}: {part!r} is not a section")
        node[leaf] = yaml.safe_load(text)
    return raw


def config_from_dict(raw: dict[str, Any]) -> TrainConfig:
    """Build a `TrainConfig`, refusing keys that no field declares."""
    _refuse_unknown("", raw, TrainConfig)
    kwargs: dict[str, Any] = dict(raw)
    for name, cls in _SECTIONS.items():
        section = raw.get(name)
        if section is None:
            continue
        if not isinstance(section, dict):
            raise ConfigError(f"{name}={section!r} is invalid: it must be a mapping")
        _refuse_unknown(name, section, cls)
        kwargs[name] = cls(**_coerce_numbers(name, section, cls))
    if "model" not in kwargs or "prompts" not in kwargs:
        raise ConfigError("the config needs a 'model' and a 'prompts' section")
    return TrainConfig(**kwargs)


def load_config(path: str | Path, overrides: list[str] | None = None) -> TrainConfig:
    """Read a YAML training config and apply `--set` overrides."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {str(path)!r} does not exist: pass --config")
    raw = yaml.safe_load(path.read_text()) or {}
    if not isinstance(raw, dict):
        raise ConfigError(f"config file {str(path)!r} must hold a YAML mapping")
    return config_from_dict(apply_overrides(raw, overrides or []))


def config_to_dict(config: TrainConfig) -> dict[str, Any]:
    """Plain data, for `summary.json` and checkpoints."""
    return dataclasses.asdict(config)


def _coerce_numbers(section: str, raw: dict[str, Any], cls: type) -> dict[str, Any]:
    """Check each value against its field's type before any validation runs.

    YAML reads `1e-3` (no dot) as a string; that is accepted for float
    fields. Anything else of the wrong type (a string where a list of URLs
    belongs, `true` for a step count) is refused here with the field named,
    rather than failing later in a comparison or being split into letters.
    """
    types = {f.name: str(f.type) for f in dataclasses.fields(cls)}
    out = dict(raw)
    for key, value in raw.items():
        out[key] = _checked(section, key, value, types[key])
    return out


_SCALARS = {"int": (int,), "float": (int, float), "bool": (bool,), "str": (str,)}


def _checked(section: str, key: str, value: Any, type_name: str) -> Any:
    optional = type_name.endswith(" | None")
    base = type_name.removesuffix(" | None")
    if value is None:
        if optional or base not in _SCALARS and not base.startswith("list["):
            return value
        raise _fail(section, key, value, f"give a value of type {base}")
    if base == "list[str]":
        if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
            return list(value)
        raise _fail(section, key, value, "use a YAML list of strings, e.g. [a, b]")
    if base not in _SCALARS:
        return value  # a nested section: checked by its own dataclass
    if base == "float" and isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            raise _fail(section, key, value, "use a number") from None
    wrong_bool = isinstance(value, bool) and base != "bool"
    if wrong_bool or not isinstance(value, _SCALARS[base]):
        raise _fail(section, key, value, f"use a value of type {base}")
    return value


def _refuse_unknown(section: str, raw: dict[str, Any], cls: type) -> None:
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - known)
    if unknown:
        where = f"section {section!r}" if section else "the top level"
        raise ConfigError(
            f"unknown key(s) {unknown} in {where}: known keys are {sorted(known)}"
        )
