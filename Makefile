# Two entry points (see README): `make demo` and `make test`. Both create .venv and install
# memopt with its dependencies first; the install is redone only when setup.cfg changes.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DEMO   := runs/demo

.PHONY: install demo test clean

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

clean:
	rm -rf runs build *.egg-info
