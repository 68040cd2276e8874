"""The Dockerfiles: layer order, pins, extras and what never enters an image.

No Docker engine runs here, so the images are not built; the tests read the
instructions and run the one piece of logic they hold (the requirements
list made from pyproject.toml) against the real pyproject.toml.
"""

from __future__ import annotations

import fnmatch
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCKERFILES = {
    "cpu": REPO / "docker" / "cpu.Dockerfile",
    "gpu": REPO / "docker" / "gpu.Dockerfile",
}
CODE_DIRS = ("rlaif", "judge_server", "trainer", "services")


def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined."""
    text = re.sub(r"\\\n", " ", path.read_text())
    pairs = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            pairs.append((word.upper(), rest.strip()))
    return pairs


def first_index(pairs, predicate) -> int:
    return next(i for i, pair in enumerate(pairs) if predicate(*pair))


def requirements_from_dockerfile(path: Path, workdir: Path) -> list[str]:
    """Run the image's requirements step on the repo's pyproject.toml."""
    (run,) = [a for k, a in instructions(path) if k == "RUN" and "tomllib" in a]
    words = shlex.split(run)
    code = words[words.index("-c") + 1]
    (workdir / "pyproject.toml").write_text((REPO / "pyproject.toml").read_text())
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=workdir,
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout.split()


def dockerignore_patterns() -> list[str]:
    lines = (REPO / ".dockerignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and line[0] != "#"]


@pytest.mark.parametrize("kind", sorted(DOCKERFILES))
def test_dependencies_install_before_any_code_is_copied(kind):
    """A code change must not invalidate the layer holding the wheels."""
    pairs = instructions(DOCKERFILES[kind])
    install = first_index(pairs, lambda k, a: k == "RUN" and "-r /tmp/req" in a)
    first_code = first_index(
        pairs, lambda k, a: k == "COPY" and a.split()[0] in CODE_DIRS
    )
    assert install < first_code
    copied_before = [a for k, a in pairs[:install] if k == "COPY"]
    assert copied_before == ["pyproject.toml ./"]


def test_cpu_image_pins_the_cpu_torch_build_of_the_makefile():
    pin = re.search(r"TORCH_PIN := (\S+)", (REPO / "Makefile").read_text())[1]
    runs = [a for k, a in instructions(DOCKERFILES["cpu"]) if "pip install" in a]
    torch_first = runs[0]
    assert "--index-url https://download.pytorch.org/whl/cpu" in torch_first
    assert pin in torch_first.split()
    # Every later install keeps the pin, so nothing swaps in the CUDA build.
    assert all(pin in run.split() for run in runs)


def test_cpu_image_requirements_are_the_project_dependencies(tmp_path):
    wanted = requirements_from_dockerfile(DOCKERFILES["cpu"], tmp_path)
    assert any(r.startswith("trl") for r in wanted)
    assert not any(r.startswith(("vllm", "deepspeed")) for r in wanted)


def test_gpu_image_installs_the_gpu_extra(tmp_path):
    wanted = requirements_from_dockerfile(DOCKERFILES["gpu"], tmp_path)
    assert any(r.startswith("vllm") for r in wanted)
    assert any(r.startswith("deepspeed") for r in wanted)
    runs = [a for k, a in instructions(DOCKERFILES["gpu"]) if k == "RUN"]
    assert any('pip install ".[gpu]"' in run for run in runs)


@pytest.mark.parametrize("kind", sorted(DOCKERFILES))
def test_no_secret_is_baked_into_an_image(kind):
    """ARG and ENV values stay in the image's history: no secret there."""
    secret = re.compile(r"(^|_)(TOKEN|KEY|PASSWORD|SECRET)$", re.I)
    names = [
        word.split("=")[0]
        for keyword, arguments in instructions(DOCKERFILES[kind])
        if keyword in ("ARG", "ENV")
        for word in arguments.split()
    ]
    assert "HF_HOME" in names or "HF_HUB_OFFLINE" in names  # the parse works
    assert not [name for name in names if secret.search(name)]


def test_build_context_leaves_out_secrets_and_local_state():
    patterns = dockerignore_patterns()
    for path in (".env", ".venv", "runs", "logs", ".git"):
        assert any(fnmatch.fnmatch(path, p) for p in patterns), path


def test_env_file_with_the_secrets_is_ignored_by_git():
    result = subprocess.run(
        ["git", "check-ignore", "--no-index", "-q", ".env"], cwd=REPO
    )
    assert result.returncode == 0


@pytest.mark.parametrize("kind", sorted(DOCKERFILES))
def test_everything_copied_is_in_the_build_context(kind):
    patterns = dockerignore_patterns()
    for keyword, arguments in instructions(DOCKERFILES[kind]):
        if keyword != "COPY":
            continue
        source = arguments.split()[0]
        assert list(REPO.glob(source)), f"COPY {source}: nothing there"
        assert not any(fnmatch.fnmatch(source, p) for p in patterns), source


@pytest.mark.parametrize("kind", sorted(DOCKERFILES))
def test_images_run_as_an_unprivileged_user(kind):
    pairs = instructions(DOCKERFILES[kind])
    last_run = max(i for i, (k, _) in enumerate(pairs) if k == "RUN")
    users = [a for k, a in pairs[last_run:] if k == "USER"]
    assert users and users[-1] not in ("root", "0")


def test_entry_scripts_are_valid_posix_shell():
    scripts = sorted((REPO / "docker").glob("*.sh"))
    assert scripts
    for script in scripts:
        subprocess.run(["sh", "-n", str(script)], check=True)


def test_compose_builds_from_these_dockerfiles(compose):
    built = {
        service["build"]["dockerfile"]
        for service in compose["services"].values()
        if "build" in service
    }
    assert built == {f"docker/{path.name}" for path in DOCKERFILES.values()}
