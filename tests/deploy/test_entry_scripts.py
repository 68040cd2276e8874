"""The one-shot entry scripts of the compose services.

The commands they call (`rlaif`, `python`) are replaced on PATH by a fake
that records its arguments and writes what the real one would; the scripts'
own logic - run once, skip when done, refuse without a token - is real. The
recorded `rlaif` arguments are then parsed by the real `rlaif` parser, so a
renamed flag fails here rather than in a container.
"""

from __future__ import annotations

import os
import shlex
import subprocess
from pathlib import Path

import pytest

from rlaif.cli import build_parser

REPO = Path(__file__).resolve().parents[2]

FAKE_RLAIF = """#!/bin/sh
echo "$*" >> "$CALLS"
case "$1" in
  bootstrap)
    while [ $# -gt 0 ]; do [ "$1" = --out ] && out=$2; shift; done
    mkdir -p "$out" && echo '{}' > "$out/bootstrap.json" ;;
  prompts)
    while [ $# -gt 0 ]; do [ "$1" = --out-dir ] && out=$2; shift; done
    mkdir -p "$out" && echo q > "$out/train.txt" && echo q > "$out/holdout.txt" ;;
esac
"""

FAKE_PYTHON = """#!/bin/sh
echo "$*" >> "$CALLS"
cat > /dev/null
mkdir -p "$3" && echo '{}' > "$3/config.json"
"""


def fake_bin(tmp_path: Path, name: str, text: str) -> Path:
    folder = tmp_path / "bin"
    folder.mkdir(exist_ok=True)
    path = folder / name
    path.write_text(text)
    path.chmod(0o755)
    return folder


def run_script(script: str, cwd: Path, bin_dir: Path, *args: str, **env: str):
    calls = cwd / "calls.txt"
    result = subprocess.run(
        ["sh", str(REPO / script), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={
            "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
            "CALLS": str(calls),
            **env,
        },
    )
    lines = calls.read_text().splitlines() if calls.exists() else []
    calls.unlink(missing_ok=True)
    return result, lines


@pytest.fixture
def workdir(tmp_path) -> Path:
    path = tmp_path / "app"
    path.mkdir()
    return path


def test_cpu_bootstrap_builds_policy_and_prompts_once(tmp_path, workdir):
    bin_dir = fake_bin(tmp_path, "rlaif", FAKE_RLAIF)
    first, calls = run_script("docker/cpu-bootstrap.sh", workdir, bin_dir)
    assert first.returncode == 0, first.stderr
    assert [call.split()[0] for call in calls] == ["bootstrap", "prompts"]
    assert (workdir / "runs/demo/base/bootstrap.json").is_file()
    assert (workdir / "runs/demo/prompts/train.txt").is_file()

    second, again = run_script("docker/cpu-bootstrap.sh", workdir, bin_dir)
    assert second.returncode == 0
    assert again == []


def test_cpu_bootstrap_passes_flags_the_cli_accepts(tmp_path, workdir):
    _, calls = run_script(
        "cpu-bootstrap.sh", workdir, fake_bin(tmp_path, "rlaif", FAKE_RLAIF)
    )
    parser = build_parser()
    for call in calls:
        args = parser.parse_args(shlex.split(call))
        assert callable(args.handler)


def test_cpu_bootstrap_writes_where_the_cpu_services_read(compose):
    """The trainer and chat of the cpu profile use the bootstrap's outputs."""
    trainer = compose["services"]["trainer-cpu"]["command"]
    chat = compose["services"]["chat-cpu"]["command"]
    assert "model.path=runs/demo/base" in trainer
    assert "prompts.train=runs/demo/prompts/train.txt" in trainer
    assert chat[chat.index("--base") + 1] == "runs/demo/base"


@pytest.fixture
def repos(compose) -> list[str]:
    """The repositories the compose `models` service fetches."""
    return compose["services"]["models"]["command"]


def test_fetch_models_refuses_to_start_without_a_token(tmp_path, workdir, repos):
    bin_dir = fake_bin(tmp_path, "python", FAKE_PYTHON)
    result, calls = run_script(
        "docker/fetch-models.sh", workdir, bin_dir, *repos, MODELS_DIR=str(workdir)
    )
    assert result.returncode == 1
    assert "HF_TOKEN" in result.stderr and repos[0] in result.stderr
    assert calls == []


def test_fetch_models_downloads_each_model_once(tmp_path, workdir, repos):
    bin_dir = fake_bin(tmp_path, "python", FAKE_PYTHON)
    env = {"MODELS_DIR": str(workdir), "HF_TOKEN": "hf_x"}
    first, calls = run_script("docker/fetch-models.sh", workdir, bin_dir, *repos, **env)
    assert first.returncode == 0, first.stderr
    targets = [call.split()[-1] for call in calls]
    assert targets == [str(workdir / repo) for repo in repos]
    assert all((Path(t) / ".rlaif-complete").is_file() for t in targets)

    second, again = run_script(
        "docker/fetch-models.sh", workdir, bin_dir, *repos, **env
    )
    assert second.returncode == 0 and again == []


def test_fetch_models_uses_weights_copied_in_by_hand(tmp_path, workdir, repos):
    for repo in repos:
        (workdir / repo).mkdir(parents=True)
        (workdir / repo / "config.json").write_text("{}")
    bin_dir = fake_bin(tmp_path, "python", FAKE_PYTHON)
    result, calls = run_script(
        "docker/fetch-models.sh", workdir, bin_dir, *repos, MODELS_DIR=str(workdir)
    )
    assert result.returncode == 0, result.stderr
    assert calls == []


def test_gpu_prompts_are_generated_where_the_trainer_reads_them(
    tmp_path, workdir, compose
):
    service = compose["services"]["prompts"]
    bin_dir = fake_bin(tmp_path, "rlaif", FAKE_RLAIF)
    result, calls = run_script(
        service["entrypoint"][1], workdir, bin_dir, *service["command"]
    )
    assert result.returncode == 0, result.stderr
    assert len(calls) == 1
    build_parser().parse_args(shlex.split(calls[0]))
    trainer = compose["services"]["trainer"]["command"]
    (train_file,) = [w.split("=")[1] for w in trainer if w.startswith("prompts.train=")]
    assert (workdir / train_file).is_file()
