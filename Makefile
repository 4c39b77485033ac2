# The two commands a new user types are `make lab` and `make test`; both set up .venv first.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.tutorial_det-installed
KERNEL := tutorial-det
LINTED := tutorial_det tests notebooks/src benchmarks images
NOTEBOOK_SOURCES := $(sort $(wildcard notebooks/src/[0-9][0-9]_*.py))
NB ?=
FRESH ?= notebooks/fresh
# OpenMP threads (torch's two on two cores) spin while they wait for each other. libgomp's default
# spin (300000 rounds) lets a waiting thread hold the core its partner needs on a busy machine;
# no spin at all (OMP_WAIT_POLICY=PASSIVE) wakes a sleeping thread for every small operation.
# Measured on a 2-core machine, quiet -> with three busy processes (NMS of 12000 proposals; the
# 2000 x 2000 IoU matrix; one Faster R-CNN step of 8 images, quiet only):
#   default spin          182 -> 2825 ms;   9.9 -> 235 ms;  384 ms
#   OMP_WAIT_POLICY=PASSIVE  1071 -> 524 ms;  83 -> 31 ms;   479 ms
#   GOMP_SPINCOUNT=10000  184 -> 1100 ms;   9.6 -> 37 ms;   404 ms
# A short spin keeps a quiet machine's speed and bounds a busy one's slowdown; the results are the
# same bit for bit. Everything started from here (JupyterLab's kernels, tests, notebooks,
# benchmarks) inherits it; set GOMP_SPINCOUNT yourself to override.
GOMP_SPINCOUNT ?= 10000
export GOMP_SPINCOUNT

.PHONY: help setup lab test lint format notebooks notebook fresh-copies bench gpu-check gpu-wheels clean

help:
	@echo "make lab        set up .venv (first time only) and open JupyterLab on notebooks/"
	@echo "make test       set up .venv, then ruff + unit/property tests + nbval over every notebook"
	@echo "make notebooks  rebuild every notebooks/*.ipynb from notebooks/src/*.py and execute it"
	@echo "make notebook NB=02_anchors   the same for one lesson"
	@echo "make fresh-copies  the lessons without outputs, to run yourself, in $(FRESH)/"
	@echo "make bench      print the benchmark tables (benchmarks/)"
	@echo "make gpu-check OUT=folder   the suite, every lesson and a training run on CUDA, one report"
	@echo "make gpu-wheels   download into .whl/ the wheels a bare GPU machine needs for gpu-check"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Reinstalls only when the dependency lists change: a second `make lab` starts at once.
$(STAMP): pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24"
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[test]"
	$(BIN)/python -m ipykernel install --user --name $(KERNEL) --display-name "Python (tutorial_det)" \
		--env GOMP_SPINCOUNT $(GOMP_SPINCOUNT) >/dev/null
	@touch $@

setup: $(STAMP)

# Bound to 127.0.0.1 with a token: $$TOKEN if set, else one Jupyter draws at random and prints in
# the URL to open. PORT=0 picks a free port; LAB_ARGS=--no-browser for a server only. The token
# reaches Jupyter in its environment (JUPYTER_TOKEN), which only its own user can read, never on
# its command line, which every local user can read in /proc/<pid>/cmdline.
# Jupyter refuses to run as root unless told to (containers and CI often are root).
lab: setup
	@if [ -n "$$TOKEN" ]; then export JUPYTER_TOKEN="$$TOKEN"; fi; \
	root=$$([ "$$(id -u)" = 0 ] && echo --allow-root); \
	exec $(BIN)/jupyter lab --ip=127.0.0.1 --port=$${PORT:-8888} $$root \
		--ServerApp.root_dir=notebooks $(LAB_ARGS)

lint: setup
	$(BIN)/ruff check $(LINTED)
	$(BIN)/ruff format --check $(LINTED)

format: setup
	$(BIN)/ruff format $(LINTED)
	$(BIN)/ruff check --fix $(LINTED)

# pytest exits 5 when it collected nothing: that is a failure here, never a pass.
test: lint
	$(BIN)/python -m pytest tests notebooks/*.ipynb \
		--nbval --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg $(PYTEST_ARGS); \
	rc=$$?; if [ $$rc -eq 5 ]; then echo "pytest collected no tests"; fi; exit $$rc

notebooks: setup
	@for src in $(NOTEBOOK_SOURCES); do $(MAKE) --no-print-directory notebook NB=$$(basename $$src .py) || exit 1; done

notebook: setup
	@test -n "$(NB)" || { echo "usage: make notebook NB=02_anchors"; exit 2; }
	@echo "executing notebooks/$(NB).ipynb"
	@start=$$(date +%s); \
	$(BIN)/jupytext --to ipynb --set-kernel python3 --execute --run-path notebooks \
		--output notebooks/$(NB).ipynb notebooks/src/$(NB).py >/dev/null && \
	echo "  notebooks/$(NB).ipynb: $$(( $$(date +%s) - start )) s"

# The lessons without their outputs, built from their sources into $(FRESH) (git-ignored), for a
# learner to run cell by cell and predict before running. A copy already there is kept: it may
# hold the learner's work. The copies are not paired with a script (their own jupytext.toml).
fresh-copies: setup
	@mkdir -p $(FRESH)
	@echo 'formats = "ipynb"' > $(FRESH)/jupytext.toml
	@for src in $(NOTEBOOK_SOURCES); do \
		copy=$(FRESH)/$$(basename $$src .py).ipynb; \
		if [ -e $$copy ]; then \
			echo "kept $$copy (yours; delete it to start that lesson again)"; \
		else \
			$(BIN)/jupytext --quiet --to ipynb --set-kernel python3 --output $$copy $$src \
				&& echo "wrote $$copy" || exit 1; \
		fi; \
	done

bench: setup
	$(BIN)/python -m benchmarks

# The GPU check runs with the Python found on the GPU machine (no .venv: its torch is the
# machine's own); GPU_CHECK_ARGS passes options on (--quick --device cpu, --seeds 0 1, ...).
GPU_PYTHON ?= python3
gpu-check:
	@test -n "$(OUT)" || { echo "usage: make gpu-check OUT=folder (the report goes there)"; exit 2; }
	$(GPU_PYTHON) -m benchmarks.gpu_check --out $(OUT) $(GPU_CHECK_ARGS)

# Wheels for Python 3.12 on x86-64 Linux, one pinned version each (benchmarks/gpu_wheels.txt).
gpu-wheels:
	rm -rf .whl
	$(PYTHON) -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 \
		--implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
		--platform manylinux2014_x86_64 -d .whl -r benchmarks/gpu_wheels.txt
	@du -sh .whl

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis
