# The README's two commands: `make reproduce` (main job) and `make test` (test suite).
# Each creates .venv on first use; torch is pinned first so pip takes the CPU wheel here instead
# of pulling a multi-GB CUDA build (users with their own torch can `pip install -e .` directly).
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
TORCH  ?= torch==2.13.0
PRESET ?= quick
SEEDS  ?= 0-4
DATA   ?= data
RESULTS ?= results

.PHONY: reproduce test setup bench clean

$(VENV)/.installed: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH)"
	$(PY) -m pip install -q -e ".[test]"
	touch $@

setup: $(VENV)/.installed

reproduce: $(VENV)/.installed
	$(PY) -m synth generate --all --seed 0 --out $(DATA)
	$(PY) -m synth verify $(DATA)
	$(PY) -m synth plot --paper --seed 0 --out figures
	@echo "datasets in $(DATA)/, figures in figures/"

test: $(VENV)/.installed
	$(PY) -m pytest -q

bench: $(VENV)/.installed
	$(PY) benchmarks/bench_vmf.py

clean:
	rm -rf $(VENV) $(DATA) $(RESULTS)
