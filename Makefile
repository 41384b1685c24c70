# modelmeta: `make run` installs and runs the whole service; `make test` installs and runs every test.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PORT ?= 8080
export PATH := $(CURDIR)/$(BIN):$(PATH)
AS_ROOT := $(if $(filter 0,$(shell id -u)),,sudo)

.PHONY: install services clients browser wrk run test test-fast lint format mypy bench clean

$(BIN)/modelmeta: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@

install: $(BIN)/modelmeta

# The npm clients the end-to-end tests run against modelmeta (tests/e2e/test_clients.py), as locked
# in tests/clients/package-lock.json; npm is not run again while they are installed and unchanged.
CLIENTS := tests/clients/node_modules/.package-lock.json
$(CLIENTS): tests/clients/package.json tests/clients/package-lock.json
	cd tests/clients && npm install --no-audit --no-fund
	touch $@

clients: $(CLIENTS)

# Start the local PostgreSQL and Redis when they are not answering (no-op when they are).
services:
	@bash .ci/services.sh

# The browser tests drive Debian's chromium through Playwright (no browser is ever downloaded):
# install it from the system packages when it is missing.
browser:
	@test -x /usr/bin/chromium || { \
	  echo "installing chromium from the system packages" >&2; \
	  $(AS_ROOT) apt-get update -qq && \
	  $(AS_ROOT) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }
	@test -x /usr/bin/chromium || { echo "chromium is missing: apt-get install chromium" >&2; exit 1; }

# The Procfile's release step first, then every other process (honcho stops all when one exits,
# so release runs on its own and is left out of `honcho start` with -c release=0).
run: install services
	$(BIN)/honcho run $(BIN)/modelmeta migrate
	$(BIN)/honcho start -f Procfile -p $(PORT) -c release=0

test: install services clients browser
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/pytest -q -p no:cacheprovider --durations=30

# The edit loop: unit and integration tests, none that starts processes (those are marked slow).
test-fast: install services
	$(BIN)/pytest -q -p no:cacheprovider -m "not slow"

lint: install
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

format: install
	$(BIN)/ruff format . && $(BIN)/ruff check --fix .

mypy: install
	$(BIN)/mypy

# Every benchmark, then their tables into the README (the 100k-model and 60 s runs take minutes).
# Throughput is measured with wrk (a C load generator that is not the bottleneck): install it when missing.
wrk:
	@command -v wrk >/dev/null || { \
	  echo "installing wrk from the system packages" >&2; \
	  $(AS_ROOT) apt-get update -qq && \
	  $(AS_ROOT) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }

bench: install services browser wrk
	rm -rf .bench
	$(BIN)/python benchmarks/refresh_bench.py
	$(BIN)/python benchmarks/api_bench.py
	$(BIN)/python benchmarks/scale_bench.py
	$(BIN)/python benchmarks/documents_bench.py
	$(BIN)/python benchmarks/load_bench.py
	$(BIN)/python benchmarks/webhooks_bench.py
	$(BIN)/python benchmarks/pages_bench.py
	$(BIN)/python benchmarks/cache_bench.py
	$(BIN)/python benchmarks/report.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
