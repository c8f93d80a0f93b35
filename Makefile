# finance-gateway: `make run` serves the embedded default, `make test` runs every test.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help install assets run test check lint typecheck format schema bench clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP) ## create .venv and install the gateway with its dev tools

assets: install ## install GraphiQL's scripts and styles locally (npm; no CDN at run time)
	$(BIN)/python -m gateway.graphiql_assets

run: install assets ## migrate, seed demo data when empty, serve on 127.0.0.1:8000 with GraphiQL
	GATEWAY_ENV=$${GATEWAY_ENV:-development} $(BIN)/gateway serve --migrate --seed-demo 50

test: install ## run the whole test suite (SQLite always; PostgreSQL when reachable)
	$(BIN)/pytest

lint: install ## ruff (lint and format check)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install ## mypy --strict
	$(BIN)/mypy

check: lint typecheck schema-check test ## everything CI runs

format: install ## apply ruff's formatting and fixes
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

schema: install ## write schema.graphql from the code
	$(BIN)/gateway export-schema > schema.graphql

schema-check: install
	$(BIN)/gateway export-schema | diff -u schema.graphql -

bench: install ## canonical benchmark on PostgreSQL (see bench/README.md)
	bash bench/run.sh $(BENCH_ARGS)

clean: ## remove the virtualenv, caches and local data
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache .hypothesis
