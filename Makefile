# Goodput: the two commands are `make demo` and `make test`; both set up .venv first.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo test test-fast lint format clean

$(STAMP): requirements.txt requirements-dev.txt constraints.txt
	@echo "==> setup: creating $(VENV) with $$($(PY) --version) and the pinned requirements"
	@$(PY) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "goodput needs Python >= 3.11")'
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	@$(BIN)/python -m pip install -q --disable-pip-version-check -r requirements-dev.txt -c constraints.txt
	@touch $(STAMP)
	@echo "==> setup: done"

setup: $(STAMP)

demo: setup
	@bash scripts/demo.sh

test: setup
	@echo "==> test: import layering (lint-imports: the contracts in pyproject.toml)"
	@$(BIN)/lint-imports --no-cache
	@echo "==> test: pytest (unit + end-to-end against real processes on 127.0.0.1; scripts/test.py says how it is split)"
	@$(BIN)/python scripts/test.py

test-fast: setup
	@$(BIN)/python -m pytest -m "not e2e"

lint: setup
	@$(BIN)/ruff format --check .
	@$(BIN)/ruff check .
	@$(BIN)/lint-imports --no-cache

format: setup
	@$(BIN)/ruff format .
	@$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache

# Optional parts keep their targets in mk/*.mk (e.g. the CPU vLLM engine).
-include mk/*.mk
