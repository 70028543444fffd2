# Two entry points (see README): `make demo` and `make test`. Both create .venv and install
# memopt with its dependencies first; the install is redone only when setup.cfg changes.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

SICE   := ../shared/data/sice-subset

.PHONY: install demo test clean real-crossval baseline memory-baseline phone-12mp heldout-variants heldout-fullframe se-12mp tf-fusion-12mp tflite-only

install: $(STAMP)

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $@

# The main job on the embedded default data (experiments/quick.toml): train a baseline on
# synthetic bursts, make one variant of every kind, convert, benchmark and evaluate each, print the
# table, then pick the best variant within 700 MB and write its model card. Resumes if interrupted.
demo: $(STAMP)
	$(BIN)/memopt run experiments/quick.toml
	$(BIN)/memopt pick results/quick --budget 700MB

test: $(STAMP)
	$(BIN)/python -m pytest -q

# Real-data quality (needs ../shared/data/sice-subset): 4 folds of 2 held-out scenes, 1024 px.
real-crossval: $(STAMP)
	$(BIN)/memopt crossval --config experiments/real-crossval.toml --data $(SICE) --folds 4 \
	    --long-side 1024 --mertens-all --out runs/real-crossval
	mkdir -p results/real-crossval
	cp runs/real-crossval/per_scene.csv runs/real-crossval/summary.md results/real-crossval/

# Held-out quality of the fine-tuned variants: each fold's model (the real-crossval recipe) is
# fine-tuned as in phone-12mp on its 6 training scenes and tested on its 2 held-out scenes.
heldout-variants: $(STAMP)
	$(BIN)/memopt crossval --config experiments/real-crossval.toml --data $(SICE) --folds 4 \
	    --long-side 1024 --variants ft,slim0.5 --finetune-from experiments/phone-12mp.toml --out runs/sice-A
	mkdir -p results/heldout-variants
	cp runs/sice-A/per_scene.csv runs/sice-A/summary.md results/heldout-variants/

# Held-out quality of the full-frame variants of the 12 MP study: each fold's model slimmed and
# fine-tuned as above, converted to int8 at each held-out scene's size (calibrated on the fold's
# training scenes) and run with XNNPACK's transient indirection buffer. Shares runs/sice-A. All four
# folds take ~2.5 h on 2 cores; results/heldout-fullframe-fold0/ is fold 0 alone (add --fold 0).
heldout-fullframe: $(STAMP)
	$(BIN)/memopt crossval --config experiments/real-crossval.toml --data $(SICE) --folds 4 \
	    --long-side 1024 --variants slim0.5,slim0.5+int8+tib,int8+tib --finetune-from experiments/phone-12mp.toml \
	    --out runs/sice-A
	mkdir -p results/heldout-fullframe
	cp runs/sice-A/per_scene.csv runs/sice-A/summary.md results/heldout-fullframe/

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

# The full study at 4032x3024 on the 8 real scenes (experiments/phone-12mp.toml, about 65 min on 2 cores).
phone-12mp: $(STAMP)
	test -f runs/baseline/model.keras || $(MAKE) baseline
	$(BIN)/memopt run experiments/phone-12mp.toml
	$(BIN)/memopt pick results/phone-12mp --budget 700MB

# Tiling a network with global operations at 12 MP (docs/global-context.md):
# the stand-in SE network's weights (fine-tuned on the SICE scenes, ~10 min), then the study.
runs/se-fusion/weights.h5: $(STAMP)
	$(BIN)/memopt run experiments/se-fusion-train.toml --out runs/se-fusion-train
	mkdir -p runs/se-fusion
	cp runs/se-fusion-train/scratch/models/ft/weights.h5 $@

se-12mp: runs/se-fusion/weights.h5
	$(BIN)/memopt run experiments/se-12mp.toml
	$(BIN)/memopt pick results/se-12mp --budget 700MB

# A .tflite as the only hand-over (docs/bring-your-own-network.md): the demo's baseline trained
# (a few minutes), converted to a float .tflite, then every row a .tflite alone allows.
runs/tflite-only/team.tflite: $(STAMP)
	test -f runs/demo-base/model.keras || $(BIN)/memopt train --config experiments/demo-train.toml --out runs/demo-base
	$(BIN)/memopt convert --model runs/demo-base/model.keras --size 384x512 --quant none -o $@

tflite-only: runs/tflite-only/team.tflite
	$(BIN)/memopt run experiments/tflite-only.toml
	$(BIN)/memopt pick results/tflite-only --budget 700MB

clean:
	rm -rf runs build *.egg-info results/quick/scratch results/quick/rows

# The published-style stand-in (experiments/networks/tf_fusion.py) at 12 MP through every technique.
runs/tf-fusion/weights.h5: $(STAMP)
	$(BIN)/memopt run experiments/tf-fusion-train.toml --out runs/tf-fusion-train
	mkdir -p runs/tf-fusion
	cp runs/tf-fusion-train/scratch/models/ft/weights.h5 $@

tf-fusion-12mp: runs/tf-fusion/weights.h5
	$(BIN)/memopt run experiments/tf-fusion-12mp.toml
	$(BIN)/memopt pick results/tf-fusion-12mp --budget 700MB
