# Set-up is automatic: every target creates (or reuses) .venv and installs what it needs.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test test-full lint local clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[local,test,dev]"
	@touch $(STAMP)

## The main job on the embedded default: local DynamoDB + Streams, local Kafka, a worker.
demo: $(STAMP)
	$(VENV)/bin/bridge demo

## Lint, types and the quick test tier (what CI runs).
test: $(STAMP) lint
	$(PY) -m pytest --durations=15 $(PYTEST_ARGS)

## Everything, slow scenario tests included.
test-full: PYTEST_ARGS += --full
test-full: test

lint: $(STAMP)
	$(PY) -m ruff check bridge tests scripts
	$(PY) -m mypy bridge
	$(VENV)/bin/lint-imports

local: $(STAMP)
	$(VENV)/bin/bridge local --kafka

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
