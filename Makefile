# Two entry points for a fresh machine: `make demo` and `make test`.
# Each creates .venv with the project and its dependencies when needed, then runs.
# `make test` = `make lint` (ruff, mypy, import contracts) + the whole suite; `make test-fast`
# = the same checks + the tests that start no process, for the edit-run loop.
PYTHON ?= python3
VENV := .venv
INSTALLED := $(VENV)/.installed

$(INSTALLED): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet -e ".[test,spark]"
	touch $(INSTALLED)

CODE := segjob tests benchmarks migrations scripts

.PHONY: install demo lint test test-fast
install: $(INSTALLED)

demo: $(INSTALLED)
	$(VENV)/bin/segjob demo

lint: $(INSTALLED)
	$(VENV)/bin/ruff check $(CODE)
	$(VENV)/bin/ruff format --check $(CODE)
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports --no-cache

test: lint
	$(VENV)/bin/python -m pytest

test-fast: lint
	$(VENV)/bin/python -m pytest -m "not slow"
