# Two entry points for a fresh machine (see README.md):
#   make demo  -- set up .venv and run the offline demo search
#   make test  -- set up .venv and run the test suite
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup test demo dashboard clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# torch + torchvision are installed first as a matching pair: torchvision pins its torch
# exactly, and a mismatched pair fails at import ("operator torchvision::nms does not exist").
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet "torch==2.14.1" "torchvision==0.29.1"
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -q tests

demo: $(STAMP)
	$(BIN)/nas search --space hybrid_metaformer_tiny --budget 10cpu-min --dataset glyphs \
		--early-stopping mo-asha --db sqlite:///nas.db

dashboard: $(STAMP)
	$(BIN)/nas dashboard --db sqlite:///nas.db

clean:
	rm -rf $(VENV) *.egg-info
