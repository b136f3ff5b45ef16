# One-command set-up: `make test` runs the suite, `make demo` the end-to-end demo,
# `make bench` the benchmark of every stage.
# Each creates .venv on first use (the torch/torchvision pair first, then requirements) and
# reuses it afterwards: the install re-runs only when a requirements file changes. The
# scripts run from this checkout as they are (no install of the package itself).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
TORCH  := torch==2.14.1 torchvision==0.29.1

.PHONY: test demo bench venv clean

venv: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH)
	$(BIN)/python -m pip install --quiet -r requirements.txt -r requirements-dev.txt
	touch $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -q tests

demo: $(STAMP)
	$(BIN)/python tools/demo.py --cfg_file config/demo.yml --seg_cfg_file config/demo_seg.yml

bench: $(STAMP)
	$(BIN)/python tools/bench.py

clean:
	rm -rf $(VENV) .pytest_cache
