# Two commands on a fresh machine: `make demo` and `make test`. Everything else is set up by them.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
AZURITE := .tools/node_modules/.bin/azurite-blob
AZURITE_VERSION := 3.35.0
export PREFECT_SERVER_ANALYTICS_ENABLED := false

CHROMIUM := /usr/bin/chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || command -v sudo)

.PHONY: help venv emulators chromium demo test lint bench clean

help:
	@echo "make demo   - set up .venv and run the demo ingest"
	@echo "make test   - set up .venv, the emulators and Chromium, then run the whole test suite"
	@echo "make lint   - ruff and the layering contract (lint-imports)"
	@echo "make bench  - run the benchmarks (see docs/benchmarks.md)"

# The demo needs the flows and NetCDF extras only; `make test` (and lint, bench) install everything.
DEMO_EXTRAS := flows,netcdf
ALL_EXTRAS := all,test,bench

define install
	@PYTHON=$$(scripts/find-python.sh) || exit 1; \
	  echo "using $$PYTHON"; \
	  [ -x $(PY) ] || $$PYTHON -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c requirements/constraints.txt -e '.[$(1)]'
endef

$(VENV)/.installed: pyproject.toml requirements/constraints.txt
	$(call install,$(ALL_EXTRAS))
	@touch $@ $(VENV)/.installed-demo

$(VENV)/.installed-demo: pyproject.toml requirements/constraints.txt
	$(call install,$(DEMO_EXTRAS))
	@touch $@

venv: $(VENV)/.installed

$(AZURITE):
	@command -v npm >/dev/null || { echo "error: npm (Node >= 18) is needed for the Azurite emulator" >&2; exit 1; }
	npm install --silent --no-audit --no-fund --prefix .tools azurite@$(AZURITE_VERSION)

emulators: $(AZURITE)

# Debian's Chromium for the browser tests of the Prefect UI (tests/ui); Playwright drives it and downloads
# no browser of its own. Installed once, as root, only when missing.
$(CHROMIUM):
	@command -v apt-get >/dev/null || { echo "error: install Chromium at $(CHROMIUM) for tests/ui" >&2; exit 1; }
	$(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null

chromium: $(CHROMIUM)

demo: $(VENV)/.installed-demo
	$(PY) -m flows.demo

# The suite runs on one pytest-xdist worker per core; a test file stays on one worker (its module
# fixtures, such as a Prefect server, start once), and each worker starts servers of its own.
PYTEST_ARGS ?= -n auto --dist loadfile

test: venv emulators chromium
	$(VENV)/bin/ruff check zarrcore flows deployments tests bench
	$(VENV)/bin/lint-imports
	$(PY) -m pytest $(PYTEST_ARGS)

lint: venv
	$(VENV)/bin/ruff check zarrcore flows deployments tests bench
	$(VENV)/bin/lint-imports

bench: venv
	$(PY) -m bench.run_all $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .tools data .pytest_cache
