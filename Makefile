# lazyphase: `make figures` (default pipeline) and `make test` (lint + tests) on a fresh clone.
# Both create .venv with Python 3.11 and install everything on first use.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
BIN    := $(VENV)/bin
CORES  ?= 2
# torch from PyPI: on Linux x86_64 that is the CUDA build (several GB); without a visible NVIDIA
# GPU, TORCH_INDEX=https://download.pytorch.org/whl/cpu takes the CPU build instead.
TORCH_VERSION ?= 2.13.0
TORCH_INDEX   ?=
HAS_GPU := $(shell command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1 && echo 1)

STAMP := $(VENV)/.installed

.PHONY: env figures test lint pytest test-slurm test-slow bench docs-figures report golden clean

env: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "lazyphase needs Python >= 3.11"'
	$(PYTHON) -m venv $(VENV)
ifeq ($(HAS_GPU),1)
	$(BIN)/pip install --quiet "torch==$(TORCH_VERSION)"
else
	$(BIN)/pip install --quiet "torch==$(TORCH_VERSION)" $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX) --extra-index-url https://pypi.org/simple)
endif
	$(BIN)/pip install --quiet -e ".[dev,slurm]"
	@$(BIN)/python -c 'import torch; c = torch.version.cuda; print(f"torch {torch.__version__}: " + (f"CUDA {c} build" if c else "CPU build"))'
	touch $(STAMP)

figures: $(STAMP)
	$(BIN)/snakemake --cores $(CORES)

lint: $(STAMP)
	$(BIN)/ruff check src tests scripts benchmarks
	$(BIN)/snakefmt --check Snakefile workflow
	$(BIN)/snakemake --lint
	$(BIN)/shellcheck scripts/slurm_local.sh
	bash -n scripts/install_chromium.sh

pytest: $(STAMP)
	$(BIN)/python -m pytest -m "not slow and not slurm" -q -n 2 --dist loadfile

# The slurm profiles end to end on a local one-node cluster (scripts/slurm_local.sh installs and
# starts it: needs root on Debian/Ubuntu; skipped with the reason otherwise; a few minutes).
test-slurm: $(STAMP)
	$(BIN)/python -m pytest -m slurm -q -rfEsP

test: lint pytest test-slurm

test-slow: $(STAMP)
	$(BIN)/python -m pytest -m slow -q

bench: $(STAMP)
	$(BIN)/python benchmarks/run.py

# The default run's figures -> docs/figures/, the tables of the README's headline numbers ->
# docs/results/ (the layout of results/), and the README's headline block rewritten from them
# (tests/test_readme.py keeps all three in sync). RESULTS=<folder> takes a finished default run
# from elsewhere instead of running the pipeline here.
RESULTS ?= results
docs-figures: $(if $(filter results,$(RESULTS)),figures,$(STAMP))
	$(BIN)/python -m lazyphase.pipeline.headline --configfile config.yaml \
		--copy-from $(RESULTS) --write README.md

report: figures
	$(BIN)/snakemake --report report.html

# The golden numbers (tests/golden/tiny.json, tests/test_golden.py): the tiny workflows run as
# the tests run them, then again with 2 torch threads and with ATen's and MKL's AVX2 kernels;
# each number's tolerance comes from its largest difference (docs/reproducibility.md). Prints
# every stored number that changed. Commit the file with the change of science it records.
GOLDEN_DIR ?= $(or $(TMPDIR),/tmp)/lazyphase-golden
GOLDEN_RUN = $(BIN)/snakemake --snakefile $(CURDIR)/Snakefile --cores $(CORES) --quiet rules \
	--replace-workflow-config --configfile $(CURDIR)/tests/configs/$$cfg.yaml
golden: $(STAMP)
	rm -rf $(GOLDEN_DIR)
	for cfg in tiny chizat_tiny; do \
	  $(GOLDEN_RUN) --directory $(GOLDEN_DIR)/ref/$$cfg && \
	  $(GOLDEN_RUN) --set-threads train_cell=2 --directory $(GOLDEN_DIR)/threads2/$$cfg && \
	  ATEN_CPU_CAPABILITY=avx2 MKL_ENABLE_INSTRUCTIONS=AVX2 \
	    $(GOLDEN_RUN) --directory $(GOLDEN_DIR)/avx2/$$cfg || exit 1; \
	done
	$(BIN)/python -m lazyphase.pipeline.golden update --results $(GOLDEN_DIR)/ref/*/results \
	  --variant $(GOLDEN_DIR)/threads2/*/results --variant $(GOLDEN_DIR)/avx2/*/results \
	  --how "make golden: tests/configs/tiny.yaml and chizat_tiny.yaml; variants: 2 torch threads (--set-threads train_cell=2), ATEN_CPU_CAPABILITY=avx2 MKL_ENABLE_INSTRUCTIONS=AVX2"

clean:
	rm -rf results logs .snakemake report.html
