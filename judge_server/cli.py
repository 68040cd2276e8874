"""``rlaif judge serve`` and ``rlaif judge validate``."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
from pathlib import Path

logger = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``judge serve`` and ``judge validate`` to the ``rlaif`` parser."""
    judge = subparsers.add_parser("judge", help="The judge server.")
    commands = judge.add_subparsers(dest="judge_command", required=True)

    serve = commands.add_parser("serve", help="Serve the judge over HTTP.")
    serve.add_argument("--config", type=Path, default=Path("configs/judge/cpu.yaml"))
    serve.add_argument("--host", help="Interface (default from config: 127.0.0.1).")
    serve.add_argument("--port", type=int, help="Port (default from config: 8100).")
    serve.add_argument(
        "--workers", type=int, default=1, help="uvicorn worker processes."
    )
    serve.set_defaults(handler=serve_command)

    validate = commands.add_parser(
        "validate", help="Measure a running judge on a labelled JSONL file."
    )
    validate.add_argument("--judge-url", required=True)
    validate.add_argument("--data", type=Path, required=True)
    validate.add_argument("--out", type=Path, required=True)
    validate.add_argument("--threshold", type=float, default=0.5)
    validate.add_argument("--rubric", help="Rubric name (server default if unset).")
    validate.add_argument(
        "--min-accuracy",
        type=float,
        help="Exit with status 1 when accuracy is below this (a gate before training).",
    )
    validate.add_argument(
        "--api-key-env",
        default="RLAIF_JUDGE_API_KEY",
        help="Environment variable holding the judge's API key, if it needs one.",
    )
    validate.set_defaults(handler=validate_command)


def serve_command(args: argparse.Namespace) -> int:
    import uvicorn

    from judge_server.api import CONFIG_ENV, LOG_LEVEL_ENV, create_app
    from judge_server.config import load_config

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    config = load_config(args.config, host=args.host, port=args.port)
    host, port = config.server.host, config.server.port
    if args.workers <= 1:
        uvicorn.run(create_app(config), host=host, port=port, log_level="warning")
        return 0

    # Several workers: each process builds its own app from the config file,
    # and their metrics meet in one multiprocess folder (services.common).
    from services.common.metrics import prepare_multiprocess_dir

    os.environ[CONFIG_ENV] = str(args.config.resolve())
    os.environ[LOG_LEVEL_ENV] = logging.getLevelName(logging.getLogger().level)
    with tempfile.TemporaryDirectory(prefix="rlaif-judge-metrics-") as folder:
        prepare_multiprocess_dir(Path(folder))
        uvicorn.run(
            "judge_server.api:app_from_env",
            factory=True,
            host=host,
            port=port,
            workers=args.workers,
            log_level="warning",
        )
    return 0


def validate_command(args: argparse.Namespace) -> int:
    from judge_server.validate import read_labelled, score_texts, validation_report

    rows = read_labelled(args.data)
    results = score_texts(
        args.judge_url,
        [row.text for row in rows],
        rubric=args.rubric,
        api_key=os.environ.get(args.api_key_env),
    )
    report = validation_report(
        [row.label for row in rows], [r["score"] for r in results], args.threshold
    )
    report.update({"judge_url": args.judge_url, "data": str(args.data)})
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    sys.stdout.write(
        f"accuracy {report['accuracy']:.3f}  precision {report['precision']:.3f}  "
        f"recall {report['recall']:.3f}  f1 {report['f1']:.3f}  "
        f"invalid {report['invalid']}/{report['n']}  -> {args.out}\n"
    )
    if args.min_accuracy is not None and report["accuracy"] < args.min_accuracy:
        sys.stderr.write(
            f"judge accuracy {report['accuracy']:.3f} is below --min-accuracy "
            f"{args.min_accuracy}: do not train against this judge\n"
        )
        return 1
    return 0
