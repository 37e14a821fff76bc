# Two entry points, each doing all set-up on a fresh Debian machine:
#   make demo   -- venv, package, data, then the main job on the embedded default
#   make test   -- the same set-up, then the test suite
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip --disable-pip-version-check
EXTRAS ?= dev,data,hf,bench,ray
STAMP := $(VENV)/.installed-$(EXTRAS)
# The exact versions, every extra included, that the full suite last passed with (see `make lock`).
LOCK := constraints.txt
TORCH := torch==2.13.0

.PHONY: demo test setup data lint lock clean deepsparse-venv

demo: setup data
	$(VENV)/bin/sparsetorch bench run --suite quick --dir sparsetorch-bench/quick

test: setup data
	$(PY) -m pytest $(PYTEST_ARGS)

setup: $(STAMP)

# torch goes in first, alone, so that nothing later makes pip pull a CUDA build; everything is
# installed through the lock, so a fresh clone gets the versions the suite passed with. The C++
# operators (src/sparsetorch/kernels/csrc) compile against that torch, so the package installs
# without build isolation, after the build tools; without a compiler it installs without them and
# says so (the kernels then fall back to pure torch).
$(STAMP): pyproject.toml setup.py $(LOCK) scripts/bootstrap.sh $(wildcard src/sparsetorch/kernels/csrc/*)
	bash scripts/bootstrap.sh "$(VENV)" "$(LOCK)"
	$(PIP) install -q -c $(LOCK) "$(TORCH)"
	$(PIP) install -q -c $(LOCK) setuptools wheel
	$(PIP) install -q -c $(LOCK) --no-build-isolation -e ".[$(EXTRAS)]"
	$(PY) -c "from sparsetorch.kernels import ops; print('sparsetorch C++ kernels:', ops.isa() if ops.available() else 'NOT BUILT: ' + ops.unavailable_reason())"
	touch $@

# Refresh the lock on purpose: the newest versions pyproject.toml's ranges allow (torch held at
# $(TORCH)), then the full suite on them. The refreshed file is kept only if the suite passes.
lock: setup
	cp $(LOCK) $(VENV)/lock.previous
	CUSTOM_COMPILE_COMMAND="make lock" $(VENV)/bin/pip-compile --quiet --upgrade --upgrade-package "$(TORCH)" \
	  --all-extras --strip-extras --allow-unsafe --no-emit-find-links --no-emit-index-url \
	  --output-file $(LOCK) pyproject.toml
	$(MAKE) test || { cp $(VENV)/lock.previous $(LOCK); $(MAKE) setup; \
	  echo "lock: the suite failed on the refreshed versions; $(LOCK) is restored" >&2; exit 1; }
	@echo "lock: the suite passed on the refreshed $(LOCK); commit it"

data:
	bash scripts/provision-data.sh "$(PY)"

# DeepSparse 1.8.0 (end of life, pins numpy 1.26) in its own venv: only a speed reference for
# `benchmarks/kernel_speed.py --deepsparse .venv-deepsparse` and `benchmarks/end_to_end.py`.
deepsparse-venv:
	python3 -m venv .venv-deepsparse
	.venv-deepsparse/bin/pip install -q --disable-pip-version-check deepsparse==1.8.0

# ruff, then the import-layer contract in pyproject.toml ([tool.importlinter], DESIGN.md "Layers").
lint: setup
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks
	$(VENV)/bin/lint-imports --no-cache

clean:
	rm -rf $(VENV) .pytest_cache build src/*.egg-info src/sparsetorch/_C*.so
