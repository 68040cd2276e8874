"""Run a command on a YAML config with a few values changed from the outside.

Compose passes deployment choices (the judge's tensor parallel size, which
must match the GPUs compose reserves) as variables, but a service reads its
settings from a YAML file in the image. This entry point copies the file
with the changes applied and runs the command on the copy, so the shipped
config stays the single source of every other value:

    python docker/run_with_config.py configs/judge/gpu.yaml \\
        vllm.tensor_parallel_size=4 -- rlaif judge serve --config {config}

Values are parsed as YAML (`4` is a number, `true` a boolean). A key whose
section is missing from the file is an error rather than a new section, so
a typo cannot go unnoticed.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

PLACEHOLDER = "{config}"


class OverrideError(ValueError):
    """An override that does not fit the config; the message says why."""


def apply_override(config: dict[str, Any], assignment: str) -> None:
    """Set `a.b.c=value` in `config`; the sections a and a.b must exist."""
    key, sep, raw = assignment.partition("=")
    if not sep or not key:
        raise OverrideError(f"override {assignment!r} is not KEY=VALUE")
    *sections, leaf = key.split(".")
    node = config
    for depth, section in enumerate(sections):
        child = node.get(section)
        if not isinstance(child, dict):
            where = ".".join(sections[: depth + 1])
            raise OverrideError(
                f"override {assignment!r}: the config has no section {where!r}; "
                "check the key against the config file"
            )
        node = child
    node[leaf] = yaml.safe_load(raw)


def split_arguments(argv: list[str]) -> tuple[Path, list[str], list[str]]:
    """CONFIG [KEY=VALUE ...] -- COMMAND ... -> (config, overrides, command)."""
    if "--" not in argv or argv.index("--") == 0:
        raise OverrideError(
            "usage: run_with_config.py CONFIG [KEY=VALUE ...] -- COMMAND ..."
        )
    cut = argv.index("--")
    config, *overrides = argv[:cut]
    command = argv[cut + 1 :]
    if PLACEHOLDER not in command:
        raise OverrideError(f"the command must name the config as {PLACEHOLDER}")
    return Path(config), overrides, command


def write_config(source: Path, overrides: list[str]) -> Path:
    """The config with `overrides` applied, in a new file."""
    config = yaml.safe_load(source.read_text()) or {}
    for assignment in overrides:
        apply_override(config, assignment)
    handle, name = tempfile.mkstemp(prefix=f"{source.stem}-", suffix=".yaml")
    with os.fdopen(handle, "w") as stream:
        yaml.safe_dump(config, stream, sort_keys=False)
    return Path(name)


def main(argv: list[str]) -> int:
    try:
        source, overrides, command = split_arguments(argv)
        path = write_config(source, overrides)
    except (OverrideError, OSError, yaml.YAMLError) as exc:
        sys.stderr.write(f"run_with_config: {exc}\n")
        return 2
    command = [str(path) if part == PLACEHOLDER else part for part in command]
    # exec, not a child process: the service receives compose's SIGTERM.
    os.execvp(command[0], command)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
