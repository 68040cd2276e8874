"""`rlaif train` (PPO, GRPO, RLOO, DPO) and `rlaif dpo pairs`.

`rlaif train` aligns a policy with judge rewards online (PPO, GRPO, RLOO)
or, with `algo: dpo`, offline on a pairs file that `rlaif dpo pairs` wrote.

Exit codes: 0 completed; 1 another trainer error (for `dpo pairs`: no
prompt gave a pair); 2 bad config, prompts or pairs file; 3 the judge
stayed down (a checkpoint was saved, `--resume` continues); 4 too many
invalid scores; 5 the judge refused our requests (e.g. an unknown rubric).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

EXIT_CODES = {"judge_unavailable": 3, "invalid_rate": 4, "judge_error": 5}
EXIT_CONFIG = 2


def register(subparsers) -> None:
    """Add `rlaif train` to the `rlaif` parser."""
    parser = subparsers.add_parser(
        "train",
        help="Train a LoRA adapter: PPO, GRPO or RLOO against the HTTP judge, "
        "or DPO on judge-labelled pairs.",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--config", required=True, help="Training YAML file.")
    parser.add_argument(
        "--judge-url",
        action="append",
        default=[],
        help="Judge base URL; repeat for several (used round-robin). "
        "Overrides judge.urls.",
    )
    parser.add_argument("--out", required=True, help="Output run directory.")
    parser.add_argument(
        "--resume", action="store_true", help="Continue from the newest checkpoint."
    )
    parser.add_argument("--max-steps", type=int, help="Override optim.steps.")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="Override a config field, e.g. --set optim.lr=5e-4 (repeatable).",
    )
    parser.set_defaults(handler=run_train)
    _register_dpo(subparsers)


def build_config(args: argparse.Namespace):
    """The config file with --set, --judge-url and --max-steps applied."""
    from trainer.config import load_config

    overrides = list(args.overrides)
    if args.judge_url:
        overrides.append("judge.urls=[" + ", ".join(args.judge_url) + "]")
    if args.max_steps is not None:
        overrides.append(f"optim.steps={args.max_steps}")
    return load_config(args.config, overrides)


def run_train(args: argparse.Namespace) -> int:
    from trainer.errors import ConfigError, PairsError, PromptsError, TrainerError
    from trainer.run import train

    _quiet_library_loggers()
    try:
        config = build_config(args)
        if not config.judge.urls and config.algo != "dpo":
            raise ConfigError("no judge URL: pass --judge-url or set judge.urls")
        result = train(config, args.out, resume=args.resume)
    except (ConfigError, PromptsError, PairsError, NotImplementedError) as exc:
        sys.stderr.write(f"rlaif train: {exc}\n")
        return EXIT_CONFIG
    except TrainerError as exc:
        sys.stderr.write(f"rlaif train failed: {exc}\n")
        return 1
    if result.status == "completed":
        if result.is_main:
            where = result.out_dir
            sys.stdout.write(f"trained {result.steps} steps; adapter in {where}\n")
        return 0
    sys.stderr.write(f"rlaif train stopped ({result.status}): {result.error}\n")
    return EXIT_CODES[result.status]


def _quiet_library_loggers() -> None:
    """One line per HTTP request and accelerate's gather notes drown the bar."""
    for name in ("httpx", "accelerate.accelerator", "accelerate.utils.other"):
        logging.getLogger(name).setLevel(logging.WARNING)


def _register_dpo(subparsers) -> None:
    """`rlaif dpo pairs`: the offline half of DPO."""
    dpo = subparsers.add_parser("dpo", help="Offline DPO: build preference pairs.")
    commands = dpo.add_subparsers(dest="dpo_command", required=True)
    parser = commands.add_parser(
        "pairs",
        help="Sample K answers per prompt, judge them, keep (best, worst) pairs.",
        description="The policy answers each prompt dpo.num_samples times; the "
        "judge scores every answer; a prompt gives a (best, worst) pair when "
        "the score gap reaches dpo.margin, otherwise it is skipped and counted. "
        "Writes FILE.parquet (prompt, chosen, rejected, chosen_score, "
        "rejected_score, judge, ...) and FILE.stats.json.",
    )
    parser.add_argument("--policy", required=True, help="Policy model dir.")
    parser.add_argument("--prompts", required=True, help="Questions (.txt/.jsonl).")
    parser.add_argument(
        "--judge-url",
        action="append",
        default=[],
        help="Judge base URL; repeat for several. Overrides judge.urls.",
    )
    parser.add_argument("--out", required=True, help="Pairs file (.parquet).")
    parser.add_argument("--config", help="Training YAML (dpo, generation, judge).")
    parser.add_argument("--k", type=int, help="Answers per prompt (dpo.num_samples).")
    parser.add_argument("--margin", type=float, help="Smallest score gap (dpo.margin).")
    parser.add_argument("--limit", type=int, help="Use only the first N prompts.")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="Override a config field, e.g. --set generation.temperature=0.8.",
    )
    parser.set_defaults(handler=run_dpo_pairs)


def pairs_config(args: argparse.Namespace):
    """The config for `rlaif dpo pairs`: --config (or defaults) plus the flags."""
    import yaml

    from trainer.config import apply_overrides, config_from_dict
    from trainer.errors import ConfigError

    raw: dict = {"algo": "dpo"}
    if args.config:
        path = Path(args.config)
        if not path.is_file():
            raise ConfigError(f"config file {args.config!r} does not exist")
        raw = yaml.safe_load(path.read_text()) or {}
    raw.setdefault("model", {})["path"] = args.policy
    raw.setdefault("prompts", {})["train"] = args.prompts
    overrides = list(args.overrides)
    if args.judge_url:
        overrides.append("judge.urls=[" + ", ".join(args.judge_url) + "]")
    for flag, key in (("k", "num_samples"), ("margin", "margin")):
        if getattr(args, flag) is not None:
            overrides.append(f"dpo.{key}={getattr(args, flag)}")
    if args.limit is not None:
        overrides.append(f"prompts.limit={args.limit}")
    return config_from_dict(apply_overrides(raw, overrides))


def run_dpo_pairs(args: argparse.Namespace) -> int:
    from trainer.errors import (
        ConfigError,
        JudgeProtocolError,
        JudgeUnavailableError,
        PromptsError,
    )
    from trainer.pairs import build_pairs, stats_path_for

    _quiet_library_loggers()
    try:
        config = pairs_config(args)
        if not config.judge.urls:
            raise ConfigError("no judge URL: pass --judge-url or set judge.urls")
        stats = build_pairs(config, args.out)
    except (ConfigError, PromptsError) as exc:
        sys.stderr.write(f"rlaif dpo pairs: {exc}\n")
        return EXIT_CONFIG
    except JudgeUnavailableError as exc:
        sys.stderr.write(f"rlaif dpo pairs: {exc}\n")
        return EXIT_CODES["judge_unavailable"]
    except JudgeProtocolError as exc:
        sys.stderr.write(f"rlaif dpo pairs: {exc}\n")
        return EXIT_CODES["judge_error"]
    skipped = ", ".join(f"{k} {v}" for k, v in sorted(stats.skipped.items()))
    sys.stdout.write(
        f"{stats.pairs} pairs from {stats.prompts} prompts "
        f"({stats.samples} answers, {stats.invalid_scores} without a valid score; "
        f"skipped: {skipped or 'none'}) -> {args.out} "
        f"(stats: {stats_path_for(Path(args.out))})\n"
    )
    if not stats.pairs:
        sys.stderr.write(
            "rlaif dpo pairs: no prompt gave a pair: lower --margin, raise --k or "
            "generation.temperature, or check the judge\n"
        )
        return 1
    return 0
