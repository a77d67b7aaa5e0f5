# Every target sets itself up on a fresh machine: the venv is (re)built when pyproject changes.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
SHARED ?= ../shared

.PHONY: run test test-fast lint format schemas readme bench clean

$(STAMP): pyproject.toml setup.py
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

## make run: a local Tansu broker, a demo stream from the corpus and the worker, until Ctrl-C
run: $(STAMP)
	$(BIN)/activity-consumer demo

## make test: the whole suite (unit, conformance, deploy checks, real broker, fault injection)
test: $(STAMP)
	$(BIN)/pytest -q -p no:cacheprovider

test-fast: $(STAMP)
	$(BIN)/pytest -q -p no:cacheprovider tests/unit tests/conformance

lint: $(STAMP)
	$(BIN)/ruff check consumer tests bench
	$(BIN)/ruff format --check consumer tests bench
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff format consumer tests bench
	$(BIN)/ruff check --fix consumer tests bench

## make schemas: regenerate avro/ from Voucherify's OpenAPI facts
schemas: $(STAMP)
	$(BIN)/python -m consumer.devtools.schemagen --openapi $(SHARED)/voucherify/customer-activity.openapi-schemas.json --out avro

## make readme: regenerate README.md's settings table from consumer/config.py
readme: $(STAMP)
	$(BIN)/python -m consumer.devtools.readme README.md

bench: $(STAMP)
	$(BIN)/python -m bench.throughput

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis build *.egg-info
