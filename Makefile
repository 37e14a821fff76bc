# Two entry points, each doing all set-up on a fresh Debian machine:
#   make demo   -- venv, package, data, then the main job on the embedded default
#   make test   -- the same set-up, then the test suite
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
EXTRAS ?= dev,data,hf,bench,ray
STAMP := $(VENV)/.installed-$(EXTRAS)

.PHONY: demo test setup data lint clean deepsparse-venv

demo: setup data
	$(VENV)/bin/sparsetorch bench run --suite quick --dir sparsetorch-bench/quick

test: setup data
	$(PY) -m pytest $(PYTEST_ARGS)

setup: $(STAMP)

# torch==2.13.0 goes in first, alone, so that nothing later makes pip pull a CUDA build.
$(STAMP): pyproject.toml scripts/bootstrap.sh
	bash scripts/bootstrap.sh "$(VENV)"
	$(VENV)/bin/pip install -q --disable-pip-version-check torch==2.13.0
	$(VENV)/bin/pip install -q --disable-pip-version-check -e ".[$(EXTRAS)]"
	touch $@

data:
	bash scripts/provision-data.sh "$(PY)"

# DeepSparse 1.8.0 (end of life, pins numpy 1.26) in its own venv: only a speed reference for
# `benchmarks/kernels.py --deepsparse .venv-deepsparse` and `benchmarks/end_to_end.py`.
deepsparse-venv:
	python3 -m venv .venv-deepsparse
	.venv-deepsparse/bin/pip install -q --disable-pip-version-check deepsparse==1.8.0

lint: setup
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks

clean:
	rm -rf $(VENV) .pytest_cache build src/*.egg-info
