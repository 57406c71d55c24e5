# Two entry points for a fresh machine: `make demo` and `make test`.
# Each creates .venv when needed: `make demo` installs only what a job needs (no test tools, no
# Spark); `make test` adds the test, lineage and Spark extras, then runs.
# `make test` = `make lint` (ruff, mypy, import contracts) + the whole suite; `make test-fast`
# = the same checks + the tests that start no process, for the edit-run loop.
PYTHON ?= python3
VENV := .venv
INSTALLED := $(VENV)/.installed
TEST_INSTALLED := $(VENV)/.installed-test

$(INSTALLED): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet -e .
	touch $(INSTALLED)

$(TEST_INSTALLED): $(INSTALLED)
	$(VENV)/bin/python -m pip install --quiet -e ".[test,spark]"
	touch $(TEST_INSTALLED)

CODE := segjob tests benchmarks migrations scripts

.PHONY: install demo lint test test-fast
install: $(TEST_INSTALLED)

demo: $(INSTALLED)
	$(VENV)/bin/segjob demo

lint: $(TEST_INSTALLED)
	$(VENV)/bin/ruff check $(CODE)
	$(VENV)/bin/ruff format --check $(CODE)
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports --no-cache

test: lint
	$(VENV)/bin/python -m pytest

test-fast: lint
	$(VENV)/bin/python -m pytest -m "not slow"
