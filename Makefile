# Two commands do all setup on a fresh machine: `make run` and `make test`.
# The virtual environment is built from uv.lock on first use, behind a stamp file.

VENV       := .venv
BIN        := $(VENV)/bin
STAMP      := $(VENV)/.synced
UV_VERSION := 0.13.8
PYTHON     ?= python3
CHROMIUM   := /usr/bin/chromium
EXTRAS     ?= dev

.PHONY: setup run api test lint fuzz notebooks browser bench clean

$(STAMP): pyproject.toml uv.lock
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)
	$(BIN)/uv sync --locked $(if $(EXTRAS),--extra $(EXTRAS)) --inexact
	@touch $@

setup: $(STAMP)  ## the virtual environment, from the lock file (EXTRAS= for runtime only)

run: setup  ## dashboard + REST API in one process
	$(BIN)/ptsim serve

api: setup  ## the REST API alone
	$(BIN)/ptsim api

browser:  ## Debian's Chromium for the end-to-end test (installed as root when missing)
	@test -x $(CHROMIUM) || { \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "Chromium is missing: run 'sudo apt-get install chromium' (needed by the browser test)"; exit 1; fi; }

test: setup browser  ## every test: unit, API, dashboard, notebooks, end-to-end
	$(BIN)/pytest

lint: setup  ## ruff check + format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: setup  ## the benchmarks (see benchmarks/README.md)
	@echo "see benchmarks/README.md for each benchmark's command"

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache test-artifacts

notebooks: setup  ## Jupyter Lab on 127.0.0.1 over notebooks/ (the analyses in the README)
	$(BIN)/jupyter lab --ip=127.0.0.1 --no-browser notebooks/
