#!/usr/bin/env bash
# Install the system tools that tests/deploy needs, when missing: Debian's
# docker-compose (validates docker-compose.yml without a Docker engine) and
# prometheus + promtool (a real server scrapes the services in a test).
# Safe to run repeatedly; it does nothing when the tools are already there.
set -euo pipefail

missing=()
command -v docker-compose >/dev/null || missing+=(docker-compose)
if ! command -v prometheus >/dev/null || ! command -v promtool >/dev/null; then
    missing+=(prometheus)
fi
if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi

if ! command -v apt-get >/dev/null; then
    echo "install-test-deps: need ${missing[*]} but apt-get is not available;" \
        "install them with your package manager" >&2
    exit 1
fi
sudo=()
if [ "$(id -u)" -ne 0 ]; then
    sudo=(sudo)
fi

echo "install-test-deps: installing ${missing[*]}"
"${sudo[@]}" apt-get update -qq
# The prometheus package would start a system service where systemd runs;
# the test starts its own server on a free port, so that one is not needed.
DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq \
    --no-install-recommends "${missing[@]}"
