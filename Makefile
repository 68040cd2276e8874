# The two commands a newcomer needs: `make demo` and `make test`.
# Both create .venv on first use. torch is pinned to the CPU build that the
# machines here carry; a bare `torch` would pull a multi-GB CUDA build.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
TORCH_PIN := torch==2.13.0
STAMP := $(VENV)/.installed

.PHONY: setup test-deps test lint format bench demo demo-quick reliability clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH_PIN)"
	$(BIN)/python -m pip install --quiet -e ".[dev]" "$(TORCH_PIN)"
	@touch $(STAMP)

# Debian's docker-compose and prometheus, for tests/deploy. Without them
# (no apt, no root) those tests skip, except in CI, which requires them.
test-deps:
	@bash scripts/install-test-deps.sh || echo "warning: deploy tools missing; tests/deploy will skip"

test: setup test-deps
	$(BIN)/python -m pytest -q

lint: setup
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .

format: setup
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: setup
	$(BIN)/python -m bench.run

reliability: setup
	$(BIN)/python -m reliability.run

demo: setup
	$(BIN)/rlaif demo

demo-quick: setup
	$(BIN)/rlaif demo --quick

clean:
	rm -rf runs logs .pytest_cache
