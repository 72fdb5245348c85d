# Two set-up commands: `make lab` (try it) and `make test` (check it). Each installs what it needs.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: test lint lab demo bench clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e ".[test,lab,bench]"
	touch $(STAMP)

test: $(STAMP)
	$(BIN)/ruff check kalam_engine kalam_jupyter tests bench
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check kalam_engine kalam_jupyter tests bench

lab: $(STAMP)
	$(BIN)/jupyter lab notebooks/

demo: $(STAMP)
	$(BIN)/jupyter execute --output=/tmp/kalam-quickstart-out.ipynb notebooks/quickstart.ipynb && \
	$(BIN)/python -m kalam_jupyter.show_notebook /tmp/kalam-quickstart-out.ipynb

bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
