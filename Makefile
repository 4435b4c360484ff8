# Two entry points, each installing what it needs into .venv first:
#   make repro   runs the default pipeline (dvc repro) on the embedded default data set
#   make test    runs the test suite, then its planted-effect tests on a second CPU kernel path
#                (and installs chromium with apt-get if it is missing)
#   make repro-full  everything: the full matrix (dvc repro full/dvc.yaml: every attack x every defense, with
#                    sequela), reports/attacks/, the paradigms, the regimes and the fidelity map
#   make repro-attacks  every attack x the default run's defenses (its report in reports/attacks/)
#   make repro-paradigms  the transfer and encoder paradigms (dvc repro full/paradigms/dvc.yaml; reports/paradigms/)
#   make repro-regimes  the membership-inference regime (dvc repro full/regimes/dvc.yaml; reports/regimes/)
#   make repro-fidelity  the fidelity map: defenses against the defender's amount of data (reports/fidelity/)
#   make paper-check CIFAR=DIR  the paper profile's BadNets and Blended x none/FT/SFT/D3 on one GPU, in at most
#                    10 minutes (bench/paper_check.py; DIR holds cifar-10-batches-bin/) -> reports/paper_check/
#   make dag         regenerate dvc.yaml and full/*/dvc.yaml from params.yaml and the stages' imports (scripts/dag.py)
#   make params      recompose params.yaml from conf/ after editing it (`make params O="data=cifar10 model=vgg16_bn"`)
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# DVC runs stage commands through the shell: put the venv first so `python` is ours.
export PATH := $(abspath $(BIN)):$(PATH)
export DVC_NO_ANALYTICS := 1

.PHONY: repro repro-full repro-attacks repro-paradigms repro-regimes repro-fidelity paper-check dag params test bench bench-launch install chromium
install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

# Each repro target first checks every params section its blocks read (seconds), then runs DVC.
repro: $(STAMP)
	$(BIN)/python -m backdoorlab.pipeline.checks default
	$(BIN)/dvc repro

repro-full: $(STAMP)
	$(BIN)/python -m backdoorlab.pipeline.checks default full paradigms regimes fidelity
	$(BIN)/dvc repro full/dvc.yaml full/attacks/dvc.yaml:report full/paradigms/dvc.yaml full/regimes/dvc.yaml full/fidelity/dvc.yaml

repro-attacks: $(STAMP)
	$(BIN)/python -m backdoorlab.pipeline.checks default full
	$(BIN)/dvc repro full/attacks/dvc.yaml:report

repro-paradigms: $(STAMP)
	$(BIN)/python -m backdoorlab.pipeline.checks default paradigms
	$(BIN)/dvc repro full/paradigms/dvc.yaml

repro-regimes: $(STAMP)
	$(BIN)/python -m backdoorlab.pipeline.checks default regimes
	$(BIN)/dvc repro full/regimes/dvc.yaml

repro-fidelity: $(STAMP)
	$(BIN)/python -m backdoorlab.pipeline.checks default fidelity
	$(BIN)/dvc repro full/fidelity/dvc.yaml

CIFAR ?= data/external/cifar10
paper-check: $(STAMP)
	$(BIN)/python bench/paper_check.py --root $(CIFAR)

dag: $(STAMP)
	$(BIN)/python scripts/dag.py

params: $(STAMP)
	$(BIN)/python scripts/compose_params.py $(O)

# The tests that train a model and assert an effect run twice: with this CPU's native kernels, then
# with ATen's portable kernels and oneDNN held to AVX2, so a test that holds on one kernel path only
# fails here, not on a reviewer's machine of another CPU type.
# Two workers, a test file each at a time (module fixtures stay in one process): the long tests
# run tiny pipelines whose stages are one-thread processes, so one core would otherwise idle. Each
# worker computes on one thread (tests/conftest.py), and the files are handed out in conftest's
# order, the longest pipelines first, not xdist's (the most tests first).
SECOND_KERNEL_PATH := ATEN_CPU_CAPABILITY=default ONEDNN_MAX_CPU_ISA=AVX2
PARALLEL := -n 2 --dist loadfile --no-loadscope-reorder
test: $(STAMP) chromium
	$(BIN)/python -m pytest $(PARALLEL)
	$(SECOND_KERNEL_PATH) $(BIN)/python -m pytest $(PARALLEL) -m planted

# tests/test_offline_plots.py opens `dvc plots show`'s page in headless Chromium (a system package).
chromium:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	if command -v apt-get >/dev/null 2>&1; then \
		echo "make test: chromium not found; installing it with apt-get (for tests/test_offline_plots.py)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	else \
		echo "make test: chromium not found and no apt-get; tests/test_offline_plots.py will fail"; \
	fi

bench: $(STAMP)
	$(BIN)/python bench/pipeline.py

bench-launch: $(STAMP)
	$(BIN)/python bench/launch.py
