# Two entry points for a fresh machine: `make demo` and `make test`.
# Each creates .venv with the project and its dependencies when needed, then runs.
PYTHON ?= python3
VENV := .venv
INSTALLED := $(VENV)/.installed

$(INSTALLED): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet -e ".[test]"
	touch $(INSTALLED)

.PHONY: install demo test
install: $(INSTALLED)

demo: $(INSTALLED)
	$(VENV)/bin/segjob demo

test: $(INSTALLED)
	$(VENV)/bin/python -m pytest
