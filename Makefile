# Two entry points (see README): `make demo` and `make test`. Both create .venv and install
# memopt with its dependencies first; the install is redone only when setup.cfg changes.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DEMO   := runs/demo

SICE   := ../shared/data/sice-subset

.PHONY: install demo test clean real-crossval baseline memory-baseline pipeline-12mp

install: $(STAMP)

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $@

# The main job on the embedded default data: synthesise bursts from scikit-image's sample
# photos, train the baseline briefly, test it on held-out synthetic scenes, print the table.
demo: $(STAMP)
	rm -rf $(DEMO)
	$(BIN)/memopt data synth --out $(DEMO)/synth --scenes 32 --seed 0
	$(BIN)/memopt data synth --out $(DEMO)/synth-test --scenes 8 --seed 1
	$(BIN)/memopt info --config experiments/demo-train.toml
	$(BIN)/memopt train --config experiments/demo-train.toml --out $(DEMO)/run
	$(BIN)/memopt test --model $(DEMO)/run/model.keras --data $(DEMO)/synth-test --out $(DEMO)/test

test: $(STAMP)
	$(BIN)/python -m pytest -q

# Real-data quality (needs ../shared/data/sice-subset): 4 folds of 2 held-out scenes, 1024 px.
real-crossval: $(STAMP)
	$(BIN)/memopt crossval --config experiments/real-crossval.toml --data $(SICE) --folds 4 \
	    --long-side 1024 --mertens-all --out runs/real-crossval
	mkdir -p results/real-crossval
	cp runs/real-crossval/per_scene.csv runs/real-crossval/summary.md results/real-crossval/

# The baseline trained on all SICE scenes, and its memory before any optimisation.
baseline: $(STAMP)
	test -d runs/synth-val-real || $(BIN)/memopt data synth --out runs/synth-val-real --scenes 8 --seed 11 --ev=-20,0,10
	$(BIN)/memopt train --config experiments/baseline-real.toml --out runs/baseline

memory-baseline: $(STAMP)
	test -f runs/baseline/model.keras || $(MAKE) baseline
	$(BIN)/memopt bench-grid --model runs/baseline/model.keras --data $(SICE) --ev=-20,0,10 \
	    --sizes 512x512,1024x1024,3024x4032 --quant none,float16,dynamic,int8 --out results/memory-baseline
	$(BIN)/memopt bench-grid --model runs/baseline/model.keras --data $(SICE) --ev=-20,0,10 \
	    --sizes 512x512,1024x1024,3024x4032 --quant none,int8 --no-xnnpack --out results/memory-baseline

# Every inference-side variant on the 8 real scenes at 4032x3024, in one run (about 6 minutes).
pipeline-12mp: $(STAMP)
	test -f runs/baseline/model.keras || $(MAKE) baseline
	$(BIN)/memopt pipeline-study --model runs/baseline --data $(SICE) --out results/pipeline-12mp \
	    --variants fp32,tile512h48,int8+tile384h48,int8+tile256h16,int8,poly2,guided2,int8+tile384h16

clean:
	rm -rf runs build *.egg-info
