# One command runs the embedded default, one passes the tests; both install what they need.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
RUNTIME := $(VENV)/.installed-runtime
TESTING := $(VENV)/.installed-test
CHROMIUM ?= /usr/bin/chromium
SUDO    := $(if $(filter 0,$(shell id -u)),,sudo)

.PHONY: run test lint install bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# `make run` needs the runtime only; `make test` adds the test extra (pytest, the Kafka-protocol
# broker, ruff, the report's plotting library, playwright) and Debian's Chromium for the report's
# browser test (playwright's own browser download is not used).
$(RUNTIME): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $(RUNTIME)

$(TESTING): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(TESTING) $(RUNTIME)

install: $(RUNTIME)

run: $(RUNTIME)
	$(BIN)/boucle run

lint: $(TESTING)
	$(BIN)/ruff check .

# Idempotent: nothing to do once the browser is there.
$(CHROMIUM):
	$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq chromium

test: lint | $(CHROMIUM)
	$(BIN)/python -m pytest

bench: $(TESTING)
	$(BIN)/pip install --quiet -e '.[test,bench]'
	$(BIN)/python benchmarks/throughput.py

clean:
	rm -rf var/ .pytest_cache
