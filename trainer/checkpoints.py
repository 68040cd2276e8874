"""Checkpoint folders: `<out>/checkpoints/checkpoint-<step>/`.

The same names for every algorithm (they match the Hugging Face Trainer's,
which GRPO and RLOO use natively), so `--resume` finds the newest one the
same way.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

_NAME = re.compile(r"^checkpoint-(\d+)$")


def checkpoints_root(out_dir: Path) -> Path:
    return out_dir / "checkpoints"


def checkpoint_dir(out_dir: Path, step: int) -> Path:
    return checkpoints_root(out_dir) / f"checkpoint-{step}"


def list_checkpoints(out_dir: Path) -> list[tuple[int, Path]]:
    """(step, path) of complete checkpoints, oldest first."""
    root = checkpoints_root(out_dir)
    if not root.is_dir():
        return []
    found = []
    for path in root.iterdir():
        match = _NAME.match(path.name)
        if match and (path / "trainer_state.json").is_file():
            found.append((int(match.group(1)), path))
    return sorted(found)


def latest_checkpoint(out_dir: Path) -> tuple[int, Path] | None:
    found = list_checkpoints(out_dir)
    return found[-1] if found else None


def rotate_checkpoints(out_dir: Path, keep: int) -> None:
    """Remove all but the `keep` newest checkpoints."""
    for _, path in list_checkpoints(out_dir)[:-keep]:
        shutil.rmtree(path, ignore_errors=True)
