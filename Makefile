# The two commands of the README: `make demo` and `make test`. Both create or reuse .venv, where the
# `overtensor` command is installed (.venv/bin/overtensor; `make shell` opens a shell with it on PATH).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# torch is pinned for reproducible numbers; the library itself accepts torch>=2.2. From the default
# index, pip picks the CUDA build on an ordinary Linux x86-64 machine (several GB). For the CPU-only
# build: make demo TORCH_INDEX=https://download.pytorch.org/whl/cpu (never set by default).
TORCH_PIN ?= torch==2.13.0
TORCH_INDEX ?=
TORCH_INDEX_ARGS := $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX) --extra-index-url https://pypi.org/simple)
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench clean venv shell

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q $(TORCH_INDEX_ARGS) "$(TORCH_PIN)"
	$(BIN)/python -m pip install -q -e ".[dev]" "$(TORCH_PIN)"
	touch $(STAMP)

venv: $(STAMP)

# An interactive shell with .venv activated: `overtensor` and `python` are the installed ones.
shell: $(STAMP)
	@echo "overtensor environment: $(CURDIR)/$(VENV) (exit to leave)"
	@. $(BIN)/activate && exec "$${SHELL:-/bin/sh}" -i

demo: $(STAMP)
	$(BIN)/overtensor demo

test: $(STAMP)
	$(BIN)/ruff check overtensor tests benchmarks
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check overtensor tests benchmarks

# Benchmarks print tables and write CSV under benchmarks/results/ (about 10 minutes on 2 cores).
bench: $(STAMP)
	cd benchmarks && for b in bench_acceptance bench_loss bench_vs_classical bench_batched \
		bench_memory bench_large; do OMP_NUM_THREADS=1 ../$(BIN)/python $$b.py || exit 1; done

clean:
	rm -rf $(VENV) build *.egg-info
