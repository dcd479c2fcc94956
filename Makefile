# churnstream: `make help` lists the targets. `make demo` and `make test` set everything up on a fresh machine.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV := .venv
BIN := $(VENV)/bin
UV_VERSION := 0.13.8
UV := $(shell command -v uv 2>/dev/null || echo python3 -m uv)
export UV_PYTHON_DOWNLOADS := never
APT_PACKAGES := redis-server:redis-server java:openjdk-17-jre-headless mvn:maven chattr:e2fsprogs npm:npm \
                chromium:chromium chromedriver:chromium-driver
ASSETS := serving/dashboard/assets

.PHONY: help setup system-deps python-deps kafka-jars dashboard-assets demo test test-unit lint format typecheck check \
        stack-up stack-down stack-status clean

help: ## Show this help
	@awk 'BEGIN {FS = ":.*?## "} /^[a-zA-Z_-]+:.*?## / {printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

setup: system-deps python-deps kafka-jars dashboard-assets ## Install everything: apt packages, venv with locked deps, Kafka jars, the dashboard's Chart.js

system-deps: ## Install missing apt packages (redis-server, Java 17, Maven, npm, Chromium and its driver for the browser tests)
	@missing=""; for pair in $(APT_PACKAGES); do \
	  command -v $${pair%%:*} >/dev/null 2>&1 || missing="$$missing $${pair##*:}"; done; \
	if [ -n "$$missing" ]; then \
	  echo "apt-get install:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi

python-deps: $(VENV)/.synced ## Create the venv from uv.lock

$(VENV)/.synced: pyproject.toml uv.lock
	@command -v uv >/dev/null 2>&1 || python3 -m uv --version >/dev/null 2>&1 || python3 -m pip install -q "uv==$(UV_VERSION)"
	$(UV) sync --frozen --python python3
	@touch $@

kafka-jars: python-deps ## Resolve the Kafka broker jars from Maven Central into the cache
	@$(BIN)/churnstream stack fetch

dashboard-assets: $(ASSETS)/node_modules/.installed ## Install the dashboard's charting library from npm (package-lock.json), served locally

$(ASSETS)/node_modules/.installed: $(ASSETS)/package.json $(ASSETS)/package-lock.json
	npm ci --prefix $(ASSETS) --no-audit --no-fund --loglevel=error
	@touch $@

demo: setup ## Stack up, models trained if missing, worker + API, live generated traffic and curl examples (Ctrl-C stops)
	$(BIN)/churnstream demo

test: setup ## Run every test (unit, doctests, integration on a real stack the session starts itself)
	$(BIN)/pytest

test-unit: python-deps ## Run only the fast tests (no stack)
	$(BIN)/pytest -m "not integration"

lint: python-deps ## ruff check, format check and the import layers (import-linter contracts in pyproject.toml)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

format: python-deps ## Apply ruff fixes and formatting
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

typecheck: python-deps ## mypy
	$(BIN)/mypy

check: lint typecheck test ## lint + typecheck + test

stack-up: setup ## Start the local stack (Kafka, Redis, embedded ClickHouse schema)
	$(BIN)/churnstream stack up

stack-down: ## Stop the processes the local stack started
	@if [ -x $(BIN)/churnstream ]; then $(BIN)/churnstream stack down; fi

stack-status: python-deps ## Show each component with version and address
	$(BIN)/churnstream stack status

clean: stack-down ## Remove the local stack's data (.churnstream/)
	rm -rf .churnstream
