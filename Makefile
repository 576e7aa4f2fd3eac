# Everything a fresh machine needs, then the demo or the tests.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
# The suite runs on two workers, a test file each at a time (a module's shared pool stays on one):
# most tests wait on real processes, so two cores do the work of one in about two thirds the time.
TEST_WORKERS ?= 2

.PHONY: setup tools demo test lint typecheck schemas clean wheel

setup: $(VENV)/.installed node_modules/.installed tools

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

# Debian tools the tests use: OpenMPI runs the MPI example and the mpi distribution, systemd's
# systemd-analyze verifies the agent's unit file, iptables and iproute2 apply the image's
# metadata guard in a scratch network namespace, headless Chromium drives the web page's
# browser tests. Under .ci/run (TRAINSTACK_CI=1) a test whose tool is still missing fails
# instead of skipping.
tools:
	@missing=; \
	command -v mpirun >/dev/null 2>&1 || missing="$$missing openmpi-bin"; \
	command -v systemd-analyze >/dev/null 2>&1 || missing="$$missing systemd"; \
	command -v iptables >/dev/null 2>&1 || missing="$$missing iptables"; \
	command -v ip >/dev/null 2>&1 || missing="$$missing iproute2"; \
	command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	[ -z "$$missing" ] || { \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing >/dev/null \
	  || echo "warning: could not install$$missing; the tests that need them are skipped on this machine"; }

demo: setup
	$(VENV)/bin/trainstack demo

# Lint, format and types first: CI fails on any of them before spending minutes on the tests.
test: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PY) -m mypy
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile

typecheck: setup
	$(PY) -m mypy

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

schemas: setup
	$(VENV)/bin/trainstack schemas --write

# The jobrunner agent alone (no pulumi), as the pool's image installs it: dist/jobrunner-*.whl
wheel: setup
	PYTHON=$(PY) packaging/build-wheel.sh dist

clean:
	rm -rf $(VENV) node_modules .trainstack .pytest_cache .mypy_cache
