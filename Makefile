# stream-app — every command a developer or CI needs. `make help` lists them.
SHELL := /bin/bash
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: help install run test test-unit test-integration test-faults lint bench bench-quick eval-oulad clean

help:  ## list the commands
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-18s %s\n", $$1, $$2}'

$(BIN)/stream-app: pyproject.toml
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	@touch $@

install: $(BIN)/stream-app  ## create .venv and install stream-app with dev tools

run: install  ## run everything embedded: broker, Redis, worker, simulator, live summary
	$(BIN)/stream-app dev

test: install  ## the whole test suite: integration (real broker and Redis) beside unit tests and doctests
	@mkdir -p var
	@echo "integration tests run beside the unit tests; their output follows (var/test-integration.log)"
	@$(BIN)/python -m pytest tests/integration -q >var/test-integration.log 2>&1 & ipid=$$!; \
	$(BIN)/python -m pytest tests/unit tests/deploy stream_app -q; urc=$$?; \
	wait $$ipid; irc=$$?; \
	echo "===== integration tests (ran beside the unit tests; exit $$irc) ====="; \
	cat var/test-integration.log; \
	echo "unit tests and doctests: exit $$urc; integration tests: exit $$irc"; \
	[ $$urc -eq 0 ] && [ $$irc -eq 0 ]

test-unit: install  ## unit tests and doctests only (no broker)
	$(BIN)/python -m pytest tests/unit stream_app -q

test-integration: install  ## integration tests only
	$(BIN)/python -m pytest tests/integration -q

test-faults: install  ## fault injection: kill -9, rebalance, broker stall, Redis outage, fuzz
	$(BIN)/python -m pytest tests/faults -q

bench: install  ## full benchmark run (results in bench/results/, table in bench/RESULTS.md)
	$(BIN)/python -m bench.run

bench-quick: install  ## a shorter benchmark run (~10-15 min)
	$(BIN)/python -m bench.run --quick

eval-oulad: install  ## at-risk scoring on real OULAD data vs a batch LightGBM baseline (into var/oulad)
	$(BIN)/stream-app oulad eval --out var/oulad

lint: install  ## ruff
	$(BIN)/ruff check stream_app tests

clean:  ## remove the venv and run data
	rm -rf $(VENV) var .pytest_cache
