# One-command set-up: `make test` runs the suite (one process per core), `make demo` the demo,
# `make bench` the benchmark of every stage, `make gpu-check` (on a CUDA GPU) the CUDA tests and
# the GPU benchmark of stages 2 and 3 within GPU_BUDGET_S seconds, reports in gpu_check/.
# Each creates .venv on first use (the torch/torchvision pair first, then requirements) and
# reuses it afterwards: the install re-runs only when a requirements file changes. The
# scripts run from this checkout as they are (no install of the package itself).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
TORCH  := torch==2.14.1 torchvision==0.29.1
GPU_BUDGET_S ?= 480

.PHONY: test demo bench gpu-check venv clean

venv: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH)
	$(BIN)/python -m pip install --quiet -r requirements.txt -r requirements-dev.txt
	touch $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -q -n auto --dist loadfile tests

demo: $(STAMP)
	$(BIN)/python tools/demo.py --cls_cfg_file config/demo_cls.yml --cfg_file config/demo.yml \
		--seg_cfg_file config/demo_seg.yml

bench: $(STAMP)
	$(BIN)/python tools/bench.py

gpu-check: $(STAMP)
	$(BIN)/python tools/gpu_check.py --out gpu_check --budget_s $(GPU_BUDGET_S)

clean:
	rm -rf $(VENV) .pytest_cache
