# paxosd: two commands for a newcomer.
#   make up    set up, then run the main job
#   make test  set up, then run every check CI runs
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: up test lint typecheck unit slow mutants clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

up: $(STAMP)
	$(BIN)/paxosd up

test: lint typecheck unit

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest -n 2 --durations=15 -m "not slow"

# Long sweeps and exhaustive searches, outside the CI run (minutes each).
slow: $(STAMP)
	$(BIN)/pytest -n 2 --durations=15 -m slow

# Every rule of the engine broken on purpose (tests/mutants/mutants.toml), each in a copy of
# the tree: its tests and its swarm must catch it. Outside the CI run (about half an hour).
mutants: $(STAMP)
	$(BIN)/python -m tests.mutants

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
