# Two set-up commands: `make lab` (try it) and `make test` (check it). Each installs what it needs.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: test lint lab demo bench clean browser

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e ".[test,lab,bench]"
	touch $(STAMP)

test: $(STAMP) browser
	$(BIN)/ruff check kalam_engine kalam_jupyter tests bench
	$(BIN)/python -m pytest

# The browser test drives Debian's Chromium through Playwright (never a downloaded browser).
# Installed here when missing and we may (root with apt-get); otherwise that one test skips.
browser:
	@if [ ! -x /usr/bin/chromium ] && command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium \
		>/dev/null) || echo "chromium could not be installed: the browser test will skip"; \
	fi

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
