# Two entry points for a fresh machine: `make demo` and `make test`. Each builds .venv from nothing.
PYTHON ?= python3
# The CPU wheel that lies on this machine's disk; `make demo TORCH=torch` takes PyPI's default build instead.
TORCH ?= torch==2.13.0
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-slow lint fuzz chaos data chromium bench clean figures

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q "$(TORCH)"
	$(BIN)/pip install -q -e ".[test]"
	touch $(STAMP)

# Debian ships the real Fashion-MNIST; elsewhere cnnzoo downloads it (checksums verified) or says what is missing.
data:
	@if [ ! -d /usr/share/datasets/fashion-mnist ] && command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
		apt-get install -y -q dataset-fashion-mnist >/dev/null 2>&1 || \
		(apt-get update -q >/dev/null 2>&1 && apt-get install -y -q dataset-fashion-mnist >/dev/null 2>&1) || \
		echo "note: could not install dataset-fashion-mnist; cnnzoo will look elsewhere"; \
	fi

# The main job on real data: a modern LeNet-5 trained on Fashion-MNIST (about a minute on 2 CPU cores).
demo: $(STAMP) data
	$(BIN)/cnnzoo data list
	$(BIN)/cnnzoo summary lenet5
	$(BIN)/cnnzoo train --recipe lenet5-demo --out runs/demo --overwrite
	@echo "Open runs/demo/curves.png and runs/demo/confusion.png; classify an image with:"
	@echo "  $(BIN)/cnnzoo predict runs/demo IMAGE.png"
	@echo "For README's tour, put cnnzoo on your shell's PATH first:  . $(BIN)/activate"

# The explorer's browser tests drive Debian's Chromium; without it they are skipped and -rs prints why.
chromium:
	@if [ -x /usr/bin/chromium ]; then :; \
	elif command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
		apt-get install -y -q chromium >/dev/null 2>&1 || \
		(apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium >/dev/null 2>&1) || \
		echo "note: could not install chromium; the explorer's browser tests will be skipped"; \
	else echo "note: no /usr/bin/chromium (as root: apt-get install chromium); the explorer's browser tests will be skipped"; \
	fi

test: $(STAMP) data chromium lint
	$(BIN)/python -m pytest -q -rs

test-slow: $(STAMP) data chromium
	$(BIN)/python -m pytest -q -rs -m slow

# Style a linter can check (pyproject.toml's [tool.ruff] says which rules and why); tests/test_structure.py checks
# the shape it cannot: import cycles, data flowing down, function and module sizes.
lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks

# The file readers fed 100,000 damaged IDX files, CIFAR pickles, checkpoints, config.json files and images (a few
# minutes; `make test` runs 3,000), and 100,000 tuning cache files and recipes each: only
# cnnzoo's one-line errors (or the cache's one-line warning) may come out, within a memory limit.
# CNNZOO_FUZZ_SEED=N varies the inputs.
fuzz: $(STAMP)
	CNNZOO_FUZZ_CASES=100000 $(BIN)/python -m pytest -q -s tests/test_fuzz.py

# A small run hit at a random moment by one of seven faults (kill -9, SIGTERM, SIGINT, a second writer, a killed
# --overwrite, a full disk, a truncated checkpoint) and recovered, 100 rounds (about 15 minutes; `make test` runs
# 3): each must end equal to an uninterrupted run. CNNZOO_CHAOS_ROUNDS=N and CNNZOO_CHAOS_SEED=N vary it.
chaos: $(STAMP)
	CNNZOO_CHAOS_ROUNDS=$${CNNZOO_CHAOS_ROUNDS:-100} $(BIN)/python -m pytest -q -s tests/test_chaos.py

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache .ruff_cache

# The figures of README's "Seeing inside", from a trained lenet5 run: make figures RUN=runs/demo
FIG_IMAGES ?= docs/figures/inputs
figures: $(STAMP)
	$(BIN)/python -m cnnzoo show maps $(RUN) $(FIG_IMAGES)/test0_Ankle_boot.png --out docs/figures
	$(BIN)/python -m cnnzoo show cam $(RUN) $(FIG_IMAGES)/test0_Ankle_boot.png --out docs/figures
	$(BIN)/python -m cnnzoo show neighbours $(RUN) $(FIG_IMAGES)/test1_Pullover.png --out $(RUN)/show
	cp $(RUN)/show/neighbours-test1_Pullover.png docs/figures/
	$(BIN)/python -m cnnzoo scoremap $(RUN) --out docs/figures
	$(BIN)/python -m cnnzoo show errors $(RUN) --out docs/figures
	$(BIN)/python -m cnnzoo show embedding $(RUN) --out docs/figures
	$(BIN)/python -m cnnzoo show features $(RUN) --out $(RUN)/show
	cp $(RUN)/show/features-classes.png docs/figures/
	$(BIN)/python -m cnnzoo show patches $(RUN) --layer C3 --out docs/figures
	$(BIN)/python -m cnnzoo show occlusion $(RUN) $(FIG_IMAGES)/test0_Ankle_boot.png --out docs/figures
	$(BIN)/python -m cnnzoo show timeline $(RUN) --out docs/figures
	$(BIN)/python -m cnnzoo show trust $(RUN) $(FIG_IMAGES)/test6_Coat.png \
		$(FIG_IMAGES)/test0_Ankle_boot.png --methods grad-cam saliency occlusion edges --out docs/figures
