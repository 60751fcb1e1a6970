# One command runs the embedded default, one passes the tests; both install what they need.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
RUNTIME := $(VENV)/.installed-runtime
TESTING := $(VENV)/.installed-test

.PHONY: run test lint install bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# `make run` needs the runtime only; `make test` adds the test extra (pytest, the Kafka-protocol
# broker, ruff, the report's plotting library).
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

test: lint
	$(BIN)/python -m pytest

bench: $(TESTING)
	$(BIN)/pip install --quiet -e '.[test,bench]'
	$(BIN)/python benchmarks/throughput.py

clean:
	rm -rf var/ .pytest_cache
