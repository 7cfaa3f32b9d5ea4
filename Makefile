# The two commands of the README: `make demo` and `make test`. Both create or reuse .venv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# torch is pinned to the CPU wheel for the local environment; the library itself accepts torch>=2.2.
TORCH_PIN ?= torch==2.13.0
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench clean venv

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q "$(TORCH_PIN)"
	$(BIN)/python -m pip install -q -e ".[dev]" "$(TORCH_PIN)"
	touch $(STAMP)

venv: $(STAMP)

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
