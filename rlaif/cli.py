"""The `rlaif` console script: one entry point, a subcommand per stage.

Each component owns its subcommands in its own `cli.py` module exposing
`register(subparsers)`; handlers import their heavy dependencies (torch,
transformers) lazily so that `rlaif --help` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

COMMAND_MODULES = (
    "judge_server.cli",  # rlaif judge serve | validate
    "trainer.cli",  # rlaif train, rlaif dpo pairs
    "services.chat.cli",  # rlaif chat serve | merge
    "rlaif.bootstrap",  # rlaif bootstrap
    "rlaif.prompts",  # rlaif prompts generate
    "rlaif.evaluate",  # rlaif eval
    "rlaif.demo",  # rlaif demo
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rlaif",
        description="RLAIF platform: judge, trainer, evaluation and chat service.",
    )
    parser.add_argument(
        "--log-level", default="INFO", help="Python logging level (default INFO)."
    )
    subparsers = parser.add_subparsers(dest="command", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


# What a user can cause and fix: a bad value (pydantic's ValidationError and
# json's JSONDecodeError are ValueErrors) or a missing or unreadable file.
USER_ERRORS = (ValueError, OSError)
EXIT_USAGE = 2


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # httpx logs every request at INFO: noise next to our own progress lines.
    if args.log_level.upper() != "DEBUG":
        logging.getLogger("httpx").setLevel(logging.WARNING)
    try:
        return int(args.handler(args) or 0)
    except USER_ERRORS as exc:
        # One line the user can act on; the traceback only when asked for.
        if args.log_level.upper() == "DEBUG":
            raise
        sys.stderr.write(
            f"rlaif {args.command}: error: {exc}\n"
            "(run with --log-level DEBUG for the traceback)\n"
        )
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
