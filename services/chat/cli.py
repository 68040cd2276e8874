"""``rlaif chat serve`` and ``rlaif chat merge``.

``--adapter DIR`` serves the adapter under its folder name;
``--adapter NAME=DIR`` chooses the name. The API key is read from
``RLAIF_CHAT_API_KEY`` only: a key on the command line would show in
``ps`` and in shell history.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from services.chat.config import ChatSettings

logger = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``rlaif chat serve`` and ``rlaif chat merge``."""
    chat = subparsers.add_parser("chat", help="OpenAI-compatible chat service.")
    commands = chat.add_subparsers(dest="chat_command", required=True)

    serve = commands.add_parser("serve", help="Serve the base model and adapters.")
    serve.add_argument("--config", type=Path, help="YAML chat config.")
    serve.add_argument(
        "--adapter",
        action="append",
        default=[],
        metavar="[NAME=]DIR",
        help="LoRA adapter to serve (repeatable); named after its folder "
        "unless NAME= is given.",
    )
    serve.add_argument(
        "--base", type=Path, help="Base model folder (overrides config)."
    )
    serve.add_argument("--host", help="Interface to bind (default 127.0.0.1).")
    serve.add_argument(
        "--port",
        type=int,
        help="TCP port (default: the config's port, 8002 in cpu.yaml).",
    )
    serve.add_argument("--log-dir", type=Path, help="Root of the Parquet request log.")
    serve.set_defaults(handler=serve_command)

    merge = commands.add_parser(
        "merge", help="Write base + adapter as one model for servers without LoRA."
    )
    merge.add_argument("--base", type=Path, required=True, help="Base model folder.")
    merge.add_argument("--adapter", type=Path, required=True, help="Adapter folder.")
    merge.add_argument("--out", type=Path, required=True, help="Output folder.")
    merge.add_argument(
        "--dtype", default="auto", help="Weights dtype of the output (default: base's)."
    )
    merge.set_defaults(handler=merge_command)


def parse_adapters(values: list[str]) -> dict[str, Path]:
    """``["a=DIR", "DIR2"]`` -> ``{"a": DIR, "<DIR2's name>": DIR2}``."""
    from services.chat.config import ConfigError

    adapters: dict[str, Path] = {}
    for value in values:
        name, sep, path = value.partition("=")
        folder = Path(path if sep else value)
        name = name if sep else folder.resolve().name
        if name in adapters:
            raise ConfigError(
                f"two adapters are named {name!r}: give them names with "
                "--adapter NAME=DIR"
            )
        adapters[name] = folder
    return adapters


def resolve_base(settings: ChatSettings, adapters: dict[str, Path]) -> Path:
    """--base, else the config's base, else the first adapter's own base."""
    from services.chat.config import ConfigError

    if settings.base is not None:
        return settings.base
    for folder in adapters.values():
        config = folder / "adapter_config.json"
        if config.is_file():
            named = json.loads(config.read_text()).get("base_model_name_or_path")
            if named and Path(named).is_dir():
                return Path(named)
    raise ConfigError("no base model: pass --base DIR or set base: in the chat config")


def check_folders(base: Path, adapters: dict[str, Path]) -> None:
    """Refuse missing folders before the model loads, with a clean message."""
    from services.chat.adapters import inspect_adapter
    from services.chat.config import ConfigError

    if not (base / "config.json").is_file():
        raise ConfigError(
            f"base model folder {str(base)!r} has no config.json: run "
            "`rlaif bootstrap` first or pass --base DIR"
        )
    for name, folder in adapters.items():
        inspect_adapter(name, folder)


def serve_command(args: argparse.Namespace) -> int:
    import uvicorn

    from services.chat.api import build_app
    from services.chat.backends import create_backend
    from services.chat.config import ConfigError, load_settings
    from services.chat.errors import AdapterError

    try:
        settings = load_settings(
            args.config,
            base=args.base,
            host=args.host,
            port=args.port,
            log_dir=args.log_dir,
        )
        adapters = parse_adapters(args.adapter)
        base = resolve_base(settings, adapters)
        check_folders(base, adapters)
        backend = create_backend(settings, base)
    except (ConfigError, AdapterError, ImportError) as exc:
        logger.error("%s", exc)
        return 2
    app = build_app(settings, backend, adapters)
    logger.info("chat service on http://%s:%d", settings.host, settings.port)
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_level=logging.getLevelName(logging.getLogger().level).lower(),
        access_log=False,
        # The generation thread wakes the event loop once per token; with
        # uvloop those wake-ups halved CPU throughput in bench/chat_bench.py.
        loop="asyncio",
    )
    return 0


def merge_command(args: argparse.Namespace) -> int:
    import sys

    from services.chat.merge import merge_adapter

    out = merge_adapter(args.base, args.adapter, args.out, dtype=args.dtype)
    sys.stdout.write(f"merged model written to {out}\n")
    return 0
