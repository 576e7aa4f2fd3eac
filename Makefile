# Everything a fresh machine needs, then the demo or the tests.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python

.PHONY: setup demo test lint schemas clean wheel mpi chromium

setup: $(VENV)/.installed node_modules/.installed mpi chromium

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

# OpenMPI runs the MPI example and the mpi distribution; Debian packages it.
mpi:
	@command -v mpirun >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends openmpi-bin >/dev/null \
	  || echo "warning: could not install OpenMPI (openmpi-bin); MPI jobs will be refused on this machine"; }

# Headless Chromium drives the web page's browser tests (jobrunner ui); Debian packages it.
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends chromium >/dev/null \
	  || echo "warning: could not install Chromium (chromium); the browser tests will be skipped"; }

demo: setup
	$(VENV)/bin/trainstack demo

# Lint and format first: CI fails on either before spending minutes on the tests.
test: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PY) -m pytest

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

schemas: setup
	$(VENV)/bin/trainstack schemas --write

# The jobrunner agent alone (no pulumi), as the pool's image installs it: dist/jobrunner-*.whl
wheel: setup
	PYTHON=$(PY) packaging/build-wheel.sh dist

clean:
	rm -rf $(VENV) node_modules .trainstack .pytest_cache
