"""docker/run_with_config.py: the judge's entry point in the GPU profile."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "docker" / "run_with_config.py"
PRINT_TP = (
    "import sys, yaml; "
    "print(yaml.safe_load(open(sys.argv[1]))['vllm']['tensor_parallel_size'])"
)


@pytest.fixture(autouse=True)
def temp_dir(tmp_path, monkeypatch):
    """The rendered copies land in the test's folder, not in /tmp."""
    monkeypatch.setenv("TMPDIR", str(tmp_path))


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True
    )


@pytest.fixture
def config(tmp_path) -> Path:
    path = tmp_path / "judge.yaml"
    path.write_text(
        "backend: vllm\nvllm:\n  model: /models/x\n  tensor_parallel_size: 1\n"
    )
    return path


def test_command_runs_on_a_copy_with_the_override_applied(config):
    result = run(
        str(config),
        "vllm.tensor_parallel_size=4",
        "--",
        sys.executable,
        "-c",
        PRINT_TP,
        "{config}",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "4"
    assert "tensor_parallel_size: 1" in config.read_text()  # original untouched


def test_values_keep_their_yaml_types(config):
    result = run(
        str(config),
        "vllm.enable_prefix_caching=false",
        "--",
        sys.executable,
        "-c",
        "import sys, yaml; print(repr(yaml.safe_load(open(sys.argv[1]))['vllm']"
        "['enable_prefix_caching']))",
        "{config}",
    )
    assert result.stdout.strip() == "False"


def test_a_key_under_a_missing_section_is_refused(config):
    result = run(str(config), "vlm.tensor_parallel_size=4", "--", "true", "{config}")
    assert result.returncode == 2
    assert "no section 'vlm'" in result.stderr


def test_a_command_that_does_not_take_the_config_is_refused(config):
    result = run(str(config), "--", "true")
    assert result.returncode == 2
    assert "{config}" in result.stderr


def test_gpu_judge_config_accepts_the_compose_override(compose, tmp_path):
    """The rendered file is one the judge server itself accepts."""
    from judge_server.config import load_config

    judge = compose["services"]["judge"]
    cut = judge["command"].index("--")
    source, *overrides = judge["command"][:cut]
    result = run(
        str(REPO / source),
        *overrides,
        "--",
        sys.executable,
        "-c",
        "import shutil, sys; shutil.copy(sys.argv[1], sys.argv[2])",
        "{config}",
        str(tmp_path / "rendered.yaml"),
    )
    assert result.returncode == 0, result.stderr
    rendered = load_config(tmp_path / "rendered.yaml")
    assert rendered.backend == "vllm"
    wanted = dict(override.split("=", 1) for override in overrides)
    assert rendered.vllm.model == wanted["vllm.model"]
    tp = yaml.safe_load(wanted["vllm.tensor_parallel_size"])
    assert rendered.vllm.tensor_parallel_size == tp
