# Two entry points, each installing what it needs into .venv first:
#   make repro   runs the default pipeline (dvc repro) on the embedded default data set
#   make test    runs the test suite
#   make repro-full  the full matrix (dvc repro full/dvc.yaml: every defense, with sequela)
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# DVC runs stage commands through the shell: put the venv first so `python` is ours.
export PATH := $(abspath $(BIN)):$(PATH)
export DVC_NO_ANALYTICS := 1

.PHONY: repro repro-full test bench install
install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

repro: $(STAMP)
	$(BIN)/dvc repro

repro-full: $(STAMP)
	$(BIN)/dvc repro full/dvc.yaml

test: $(STAMP)
	$(BIN)/python -m pytest

bench: $(STAMP)
	$(BIN)/python bench/pipeline.py
