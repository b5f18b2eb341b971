# Two commands on a fresh machine: `make demo` and `make test`. Both create .venv and install what they need.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test check lint typecheck bench plotly clean

# pip prints each package as it goes (a first install takes a few minutes); PIP_FLAGS=-q quietens it.
PIP_FLAGS ?= --progress-bar on

$(STAMP): pyproject.toml
	@echo "layerscope: creating $(VENV) and installing torch (CPU build), Dash, scikit-learn, ... (a few minutes)"
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# Pinned: the CPU build of torch 2.13.0; an unpinned torch pulls a multi-GB CUDA build.
	$(BIN)/pip install $(PIP_FLAGS) torch==2.13.0
	$(BIN)/pip install $(PIP_FLAGS) -e '.[dev]'
	touch $(STAMP)
	@echo "layerscope: installed into $(VENV)"

install: $(STAMP)

# The dashboard on the bundled MNIST: prepares the Run from the shipped weights on first start (cached), then serves.
# make demo PORT=8060 serves elsewhere (a busy port moves on to the next free one by itself).
PORT ?= 8050

demo: $(STAMP)
	$(BIN)/layerscope demo --port $(PORT)

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

typecheck: $(STAMP)
	$(BIN)/mypy

# The test command: lint, type check, then the test suite.
test: lint typecheck
	$(BIN)/pytest -q

bench: $(STAMP)
	$(BIN)/python benchmarks/run_all.py

# The dashboard's plotly.js (src/layerscope/dashboard/assets/plotly.min.js): plotly.js with the trace types the
# dashboard draws, rebuilt from npm after a plotly upgrade (tools/plotly/build.js lists the traces).
plotly:
	cd tools/plotly && npm ci --no-audit --no-fund && npm run build

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
