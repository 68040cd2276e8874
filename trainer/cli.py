"""`rlaif train`: align a policy with judge rewards (PPO, GRPO or RLOO).

Exit codes: 0 completed; 1 another trainer error; 2 bad config or prompts;
3 the judge stayed down (a checkpoint was saved, `--resume` continues);
4 too many invalid scores; 5 the judge refused our requests (e.g. an
unknown rubric).
"""

from __future__ import annotations

import argparse
import logging
import sys

EXIT_CODES = {"judge_unavailable": 3, "invalid_rate": 4, "judge_error": 5}
EXIT_CONFIG = 2


def register(subparsers) -> None:
    """Add `rlaif train` to the `rlaif` parser."""
    parser = subparsers.add_parser(
        "train",
        help="Train a LoRA adapter with PPO, GRPO or RLOO against the HTTP judge.",
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
    from trainer.errors import ConfigError, PromptsError, TrainerError
    from trainer.run import train

    _quiet_library_loggers()
    try:
        config = build_config(args)
        if not config.judge.urls:
            raise ConfigError("no judge URL: pass --judge-url or set judge.urls")
        result = train(config, args.out, resume=args.resume)
    except (ConfigError, PromptsError) as exc:
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
