# Two commands: `make run` and `make test`. Both create .venv and install the package first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
RUN_DIR ?= runs/run-$(shell date +%Y%m%d-%H%M%S)
CONFIG ?= configs/default.yaml
export TF_USE_LEGACY_KERAS := 1
export TF_CPP_MIN_LOG_LEVEL := 2

.PHONY: install run test bench clean-runs

install: $(STAMP)

$(STAMP): setup.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e ".[test]"
	touch $(STAMP)

## make run: simulate, preprocess (Beam/TFT), train, evaluate and export on configs/default.yaml
run: $(STAMP)
	$(VENV)/bin/ctrcvr run --config $(CONFIG) --output-dir $(RUN_DIR)

## make test: the whole test suite, on two worker processes (whole files per worker: module fixtures built once)
test: $(STAMP)
	$(PY) -m pytest tests -q -p no:cacheprovider -n 2 --dist loadfile

## make bench: the benchmarks in benchmarks/ (slow; run them alone on the machine)
bench: $(STAMP)
	$(PY) benchmarks/preprocess.py

clean-runs:
	rm -rf runs
