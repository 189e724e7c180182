# The two commands a new user needs: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test lint bench install clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed-base: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@ $(VENV)/.installed-base

run: $(VENV)/.installed-base
	$(BIN)/pixweb migrate
	$(BIN)/pixweb run --host 127.0.0.1 --port 5000

lint: $(VENV)/.installed-test
	$(BIN)/ruff check pixweb tests
	$(BIN)/ruff format --check pixweb tests
	$(BIN)/mypy
	$(BIN)/lint-imports

test: lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# Not part of `make test`: a few minutes of load against real servers on 127.0.0.1.
bench: $(VENV)/.installed-test
	$(BIN)/python -m tests.benchmarks.bench

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
