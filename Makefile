# Set-up and the commands the README opens with. Every target builds the virtual environment
# first: torch==2.13.0 (the CPU build) before anything else, so no multi-GB CUDA build is pulled.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.rankkit-installed

.PHONY: setup setup-gpu quickstart test test-slow test-all lint clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e ".[bm25,serve,dev]"
	$(BIN)/rankkit models fetch splade-tiny
	touch $(STAMP)

# faiss-gpu replaces faiss-cpu: both install the module `faiss`, so never keep both.
setup-gpu: setup
	$(BIN)/pip uninstall --yes faiss-cpu
	$(BIN)/pip install --quiet --force-reinstall faiss-gpu-cu12

quickstart: setup
	$(BIN)/rankkit quickstart

test: setup
	$(BIN)/python -m pytest -q

test-slow: setup
	$(BIN)/python -m pytest -q -m slow

test-all: test test-slow

# ruff: the lint rules and the formatting in pyproject.toml
lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean:
	rm -rf $(VENV) quickstart-output .pytest_cache
