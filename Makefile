# Two commands do all setup on a fresh machine: `make run` and `make test`.
# The virtual environment is built from uv.lock on first use, behind a stamp file.

# Bytecode is cached (a machine may set PYTHONDONTWRITEBYTECODE): without it every server,
# CLI, kernel and test worker compiles pandas, numpy and the project from source on start,
# seconds each. The lock's packages are compiled once at install (uv sync --compile-bytecode).
unexport PYTHONDONTWRITEBYTECODE

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
	$(BIN)/uv sync --locked --compile-bytecode $(if $(EXTRAS),--extra $(EXTRAS)) --inexact
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

# Two workers (CI has two cores): the suite waits on servers, kernels and a browser as much as it
# computes. --dist loadfile keeps each file on one worker, so module fixtures are shared and the
# end-to-end tests keep their order. PYTEST_WORKERS=0 runs everything in one process.
PYTEST_WORKERS ?= 2
test: setup browser  ## every test: unit, API, dashboard, notebooks, end-to-end
	$(BIN)/pytest -n $(PYTEST_WORKERS) --dist loadfile --durations=15

lint: setup  ## ruff check + format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: setup  ## the benchmarks (see benchmarks/README.md)
	@echo "see benchmarks/README.md for each benchmark's command"

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache test-artifacts

FUZZ_EXAMPLES ?= 100
FUZZ_DIR      := test-artifacts/fuzz
fuzz: setup  ## schemathesis against a live `ptsim api` (longer than the in-process run in make test)
	@rm -rf $(FUZZ_DIR) && mkdir -p $(FUZZ_DIR)
	@port=$$($(BIN)/python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'); \
	export PTSIM_MAX_SIMULATION_ROWS=100000 SCHEMATHESIS_HOOKS=tests.reliability.fuzz_hooks; \
	PTSIM_ADMIN_TOKEN=fuzz-token PTSIM_ADMIN_FAILURE_LIMIT=1000000000/s PTSIM_BACKUP_INTERVAL_S=0 PTSIM_RATE_LIMIT= PTSIM_HOST=127.0.0.1 \
	  $(BIN)/ptsim api --db $(CURDIR)/$(FUZZ_DIR)/fuzz.duckdb --api-port $$port \
	  > $(FUZZ_DIR)/server.log 2>&1 & pid=$$!; \
	until curl -fs http://127.0.0.1:$$port/health > /dev/null; do \
	  kill -0 $$pid 2>/dev/null || { cat $(FUZZ_DIR)/server.log; exit 1; }; sleep 0.2; done; \
	status=0; \
	$(BIN)/schemathesis run http://127.0.0.1:$$port/openapi.json \
	  -H "Authorization: Bearer fuzz-token" --checks all --max-examples $(FUZZ_EXAMPLES) \
	  --exclude-path /backtest --seed 20240611 --workers 1 --generation-database none \
	  || status=$$?; \
	kill $$pid; while kill -0 $$pid 2>/dev/null; do sleep 0.2; done; \
	exit $$status

notebooks: setup  ## Jupyter Lab on 127.0.0.1 over notebooks/ (the analyses in the README)
	$(BIN)/jupyter lab --ip=127.0.0.1 --no-browser notebooks/
