# FakeScope-Kit. `make demo` and `make test` set everything up themselves on a fresh clone.
.PHONY: install demo test slow_test bench style quality clean help

PYTHON ?= python3.11
VENV ?= .venv
# torch is installed first and pinned: an open range would pull a multi-GB CUDA build.
# Override on a GPU box, e.g. `make install TORCH="torch==2.11.0"`, or `TORCH=` to keep the torch you have.
TORCH ?= torch==2.13.0
EXTRAS ?= train,eval,dev
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell echo "$(EXTRAS)" | tr ',' '-')
DEMO_OUT ?= outputs/demo
check_dirs := fakeinstruct modeling scripts tests

export PIP_DISABLE_PIP_VERSION_CHECK := 1
export TORCH_EXTENSIONS_DIR := $(abspath $(VENV))/torch_extensions

help:  ## list the targets
	@grep -E '^[a-z_]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@if [ -n "$(TORCH)" ] && ! $(BIN)/python -c "import torch" 2>/dev/null; then \
		echo "installing $(TORCH) first"; $(BIN)/pip install -q "$(TORCH)"; fi
	$(BIN)/pip install -q -e ".[$(EXTRAS)]"
	touch $@

install: $(STAMP)  ## create .venv: pinned torch first, then the package with its extras

demo: install  ## run the whole pipeline on the bundled sample
	$(BIN)/python scripts/demo.py --output-dir $(DEMO_OUT)

test: install  ## fast tests
	$(BIN)/python -m pytest -q tests

slow_test: install  ## multi-process, DeepSpeed, browser and long tests (installs the app extra too)
	$(MAKE) install EXTRAS="$(EXTRAS),app"
	$(BIN)/python -m pytest -q -m slow tests

bench: install  ## the benchmarks of benchmarks/*.md (minutes; run on a quiet machine)
	$(BIN)/python scripts/benchmark_generate.py --pairs 2000000 --workers 2
	$(BIN)/python scripts/benchmark_import.py --workers 2
	$(BIN)/python scripts/benchmark_train.py
	$(BIN)/python scripts/benchmark_scoring.py --images 2048 --batch-size 16 --num-workers 2

style: install  ## format and fix
	$(BIN)/ruff format $(check_dirs)
	$(BIN)/ruff check --fix $(check_dirs)

quality: install  ## lint without changing files
	$(BIN)/ruff format --check $(check_dirs)
	$(BIN)/ruff check $(check_dirs)

clean:  ## remove outputs and caches (keeps .venv)
	rm -rf outputs .pytest_cache .ruff_cache
