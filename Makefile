# smslinks — `make run` starts the service, `make test` runs lint, types and tests.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test lint typecheck unit bench bench-scale clean

# What the machine itself must have; scripts/need.sh installs it (apt-get) when we are root.
SYSTEM := py.ensurepip:python3-venv redis-server:redis-server redis-cli:redis-tools

$(BIN)/python:
	PYTHON=$(PYTHON) scripts/need.sh $(SYSTEM)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.run-installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	touch $@

$(VENV)/.test-installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[test,load]'
	touch $@

run: $(VENV)/.run-installed
	@PYTHON=$(PYTHON) scripts/need.sh $(SYSTEM) curl:curl
	./scripts/run.sh

lint: $(VENV)/.test-installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(VENV)/.test-installed
	$(BIN)/mypy

# What the browser tests drive (tests/admin/dashboard): installed when we are root; without
# them those tests skip, saying so.
BROWSER := chromium:chromium chromedriver:chromium-driver

# The stores the suite runs against (tests/conftest.py): single, cluster, or single,cluster.
TEST_STORE ?= single,cluster

unit: $(VENV)/.test-installed
	@PYTHON=$(PYTHON) scripts/need.sh $(SYSTEM)
	@scripts/need.sh --optional "the browser tests" $(BROWSER)
	TEST_STORE=$(TEST_STORE) $(BIN)/pytest

test: lint typecheck unit

# The load generators: wrk (closed loop) and h2load (open loop, nghttp2-client).
BENCH_TOOLS := wrk:wrk h2load:nghttp2-client

bench: $(VENV)/.test-installed
	@PYTHON=$(PYTHON) scripts/need.sh $(SYSTEM) $(BENCH_TOOLS)
	$(BIN)/python -m loadtests.bench $(BENCH_ARGS)

# Growth rows, each in a fresh Redis: memory per link, creation rate and miss-path p99 at
# 10,000 and 10,000,000 links (~1 GB of Redis, under 20 minutes); loadtests/results/scale.*
bench-scale: $(VENV)/.test-installed
	@PYTHON=$(PYTHON) scripts/need.sh $(SYSTEM) $(BENCH_TOOLS)
	$(BIN)/python -m loadtests.bench --scale 10000,10000000 $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis test-artifacts
