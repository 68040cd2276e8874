"""Shared pieces of the deployment tests: repo paths and the system tools.

docker-compose and prometheus are Debian packages, not Python ones;
`scripts/install-test-deps.sh` installs them. Without them these tests skip,
unless RLAIF_REQUIRE_DEPLOY_TOOLS=1 (set it in CI), which turns a missing
tool into a failure so the checks cannot silently vanish.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "docker-compose.yml"


def require_tool(name: str) -> str:
    """The path of a system tool, or skip (fail in CI) with how to get it."""
    path = shutil.which(name)
    if path is not None:
        return path
    message = f"{name} is not installed: run scripts/install-test-deps.sh"
    if os.environ.get("RLAIF_REQUIRE_DEPLOY_TOOLS") == "1":
        pytest.fail(message)
    pytest.skip(message)


@functools.cache
def compose_v1() -> str:
    """Debian's docker-compose 1.x: the tests read its `config` output.

    Compose v2 writes a different shape (long-form ports and volumes) and
    filters services by profile, so it is refused rather than misread.
    """
    binary = require_tool("docker-compose")
    version = subprocess.run(
        [binary, "version", "--short"], capture_output=True, text=True, timeout=30
    ).stdout.strip()
    if not version.startswith("1."):
        pytest.skip(
            f"docker-compose {version or '?'} is not Compose 1.x, whose output "
            "these tests read: run scripts/install-test-deps.sh on Debian"
        )
    return binary


# Values for every variable the compose file interpolates without a default;
# the rest keep their defaults, as on a user's machine without a .env.
BASE_ENV = {"GRAFANA_ADMIN_PASSWORD": "test-password"}


@pytest.fixture(scope="session")
def base_env() -> dict[str, str]:
    return dict(BASE_ENV)


def run_compose_config(
    env: dict[str, str] | None = None, check: bool = True
) -> subprocess.CompletedProcess:
    """`docker-compose config`, with only PATH and `env` in the environment.

    An empty `--env-file` keeps a developer's own .env out of the result.
    """
    binary = compose_v1()
    with tempfile.NamedTemporaryFile(suffix=".env") as empty_env:
        command = [binary, "--env-file", empty_env.name, "-f", str(COMPOSE_FILE)]
        return subprocess.run(
            [*command, "config"],
            capture_output=True,
            text=True,
            cwd=REPO,
            env={"PATH": os.environ["PATH"], **(BASE_ENV if env is None else env)},
            timeout=60,
            check=check,
        )


@pytest.fixture(scope="session")
def compose_config():
    """`run_compose_config`, for tests that set variables of their own."""
    return run_compose_config


@pytest.fixture(scope="session")
def compose() -> dict:
    """The resolved compose model with the default variables."""
    return yaml.safe_load(run_compose_config().stdout)


@pytest.fixture(scope="session")
def tool():
    """`require_tool`: a system tool's path, or a skip saying how to get it."""
    return require_tool
