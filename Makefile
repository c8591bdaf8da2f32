# The README's two commands: `make reproduce` (main job) and `make test` (test suite).
# Each creates .venv on first use; torch is pinned first so pip takes the CPU wheel here instead
# of pulling a multi-GB CUDA build (users with their own torch can `pip install -e .` directly).
PYTHON   ?= python3
VENV     ?= .venv
PY       ?= $(VENV)/bin/python
TORCH    ?= torch==2.13.0
PRESET   ?= fair_quick
SEEDS    ?= 0
DATA_SEEDS ?= 0-4
DATASETS ?= all
DEVICE   ?= auto
EXECUTOR ?= local
DATA     ?= data
RESULTS  ?= results
FIGURES  ?= figures

.PHONY: reproduce run-reproduce test setup bench clean

$(VENV)/.installed: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q --upgrade pip
	$(VENV)/bin/python -m pip install -q "$(TORCH)"
	$(VENV)/bin/python -m pip install -q -e ".[test]"
	touch $@

setup: $(VENV)/.installed

# Regenerate the 20 datasets (DATA_SEEDS draws each), sweep the Table-8 encoders (searched on the first
# draw, the chosen configuration trained on every draw x SEEDS), write tables and figures.
# PRESET=fair_quick (default): every encoder the same 4 configurations and training, scales in degrees; PRESET=quick: cheaper
# but unequal tuning; PRESET=paper: the paper's grid by the adaptive search. A killed run resumes where it stopped.
reproduce: $(VENV)/.installed
	@$(MAKE) --no-print-directory run-reproduce PY=$(PY)

# The variables are checked first (a dry run: seconds), so a bad PRESET, DATASETS or DATA_SEEDS is one
# line before any data or figure is written.
run-reproduce:
	@start=$$(date +%s); \
	$(PY) -m experiments sweep --datasets $(DATASETS) --encoders table8 --space $(PRESET) --seeds $(SEEDS) \
	    --data-seeds $(DATA_SEEDS) --device $(DEVICE) --executor $(EXECUTOR) --dry-run > /dev/null && \
	$(PY) -m synth generate --all --seed $(DATA_SEEDS) --out $(DATA) && \
	$(PY) -m synth verify $(DATA) && \
	$(PY) -m synth plot --paper --seed 0 --out $(FIGURES) > /dev/null && \
	$(PY) -m experiments sweep --datasets $(DATASETS) --encoders table8 --space $(PRESET) --seeds $(SEEDS) \
	    --data-seeds $(DATA_SEEDS) --data $(DATA) --device $(DEVICE) --executor $(EXECUTOR) --db $(RESULTS)/results.sqlite --resume && \
	$(PY) -m experiments report --db $(RESULTS)/results.sqlite --datasets $(DATASETS) --out $(RESULTS) \
	    --figures $(FIGURES) --device $(DEVICE) --experiment $(basename $(notdir $(PRESET))) && \
	echo "done in $$(( $$(date +%s) - start )) s: datasets in $(DATA)/, tables in $(RESULTS)/ (table8.md, summary.md), figures in $(FIGURES)/"

test: $(VENV)/.installed
	PATH="$(abspath $(VENV))/bin:$$PATH" $(PY) -m pytest -q

bench: $(VENV)/.installed
	$(PY) benchmarks/bench_vmf.py
	$(PY) benchmarks/bench_encoders.py
	$(PY) benchmarks/bench_train.py

clean:
	rm -rf $(VENV) $(DATA) $(RESULTS)
