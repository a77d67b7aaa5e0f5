# Every target sets itself up on a fresh machine: the venv is (re)built when pyproject changes.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test test-fast test-py313 lint format schemas readme bench bench-smoke bench-gateway soak clean

$(STAMP): pyproject.toml setup.py
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

## make run: a local Tansu broker, a demo stream from the corpus and the worker, until Ctrl-C
run: $(STAMP)
	$(BIN)/activity-consumer demo

## make test: the whole suite (unit, conformance, deploy checks, real broker, fault injection):
## the tests side by side (they mostly wait: each pytest-xdist worker has its own broker), then
## those that measure time or load (`serial`) alone, then the fast tests on CPython 3.13 where
## this machine has it; it ends with the 15 slowest tests and the totals of every run.
TEST_WORKERS ?= 4
REPORTS      := .test-reports
test: $(STAMP)
	@rm -rf $(REPORTS) && mkdir -p $(REPORTS)
	$(BIN)/pytest -q -p no:cacheprovider -n $(TEST_WORKERS) --dist worksteal -m "not serial" --junitxml=$(REPORTS)/parallel.xml
	$(BIN)/pytest -q -p no:cacheprovider -m serial --junitxml=$(REPORTS)/serial.xml
	@$(MAKE) --no-print-directory test-py313 PY313_REPORT=$(abspath $(REPORTS))/py313.xml
	@$(BIN)/python -m tests.support.slowest $(REPORTS)/*.xml

# CPython 3.13: the first interpreter that runs and says 3.13 (PATH, then pyenv's versions), if any.
PY313 ?= $(shell for p in python3.13 $$HOME/.pyenv/versions/3.13*/bin/python3.13 /usr/bin/python3.13; do \
	"$$p" -c 'import sys; assert sys.version_info[:2] == (3, 13)' >/dev/null 2>&1 && { echo "$$p"; break; }; done)
VENV313  := .venv-313
STAMP313 := $(VENV313)/.installed

$(STAMP313): pyproject.toml setup.py
	test -x $(VENV313)/bin/python || $(PY313) -m venv $(VENV313)
	$(VENV313)/bin/pip install --quiet --upgrade pip
	$(VENV313)/bin/pip install --quiet -e '.[dev]'
	touch $(STAMP313)

## make test-py313: unit and conformance tests on CPython 3.13 (fastavro: cavro has no 3.13 wheels)
test-py313:
ifeq ($(strip $(PY313)),)
	@echo "test-py313: no CPython 3.13 interpreter on this machine; the fast tests ran on $$($(PYTHON) --version 2>&1) only"
else
	@$(MAKE) --no-print-directory $(STAMP313)
	@echo "test-py313: unit and conformance tests on $$($(PY313) --version 2>&1) ($(PY313)), fastavro engine"
	$(VENV313)/bin/pytest -q -p no:cacheprovider tests/unit tests/conformance $(if $(PY313_REPORT),--junitxml=$(PY313_REPORT))
endif

test-fast: $(STAMP)
	$(BIN)/pytest -q -p no:cacheprovider tests/unit tests/conformance

lint: $(STAMP)
	$(BIN)/ruff check consumer tests bench
	$(BIN)/ruff format --check consumer tests bench
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff format consumer tests bench
	$(BIN)/ruff check --fix consumer tests bench

## make schemas: regenerate avro/ from Voucherify's OpenAPI facts (consumer/devtools/data/voucherify/)
schemas: $(STAMP)
	$(BIN)/python -m consumer.devtools.schemagen --out avro

## make readme: regenerate README.md's settings tables from consumer/config/
readme: $(STAMP)
	$(BIN)/python -m consumer.devtools.readme README.md

# Quix Streams 3.28 pins confluent-kafka < 2.13: the benchmark gets its own venv, the project's pins stay.
BENCH_VENV  := .venv-bench
BENCH_STAMP := $(BENCH_VENV)/.installed

$(BENCH_STAMP): pyproject.toml setup.py
	test -x $(BENCH_VENV)/bin/python || $(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/pip install --quiet --upgrade pip
	$(BENCH_VENV)/bin/pip install --quiet -e '.[demo]' 'quixstreams==3.28.1'
	touch $(BENCH_STAMP)

## make bench: one table from one run on one Tansu broker (bench/run.py), every row from .venv-bench
bench: $(BENCH_STAMP)
	$(BENCH_VENV)/bin/python -m bench.run --sweep

## make bench-gateway: the webhook gateway's rows (bench/gateway.py): acknowledged deliveries/s on Tansu,
## request latency, CPU per 1k, peak RSS, against the same aiohttp server answering 200 without producing
bench-gateway: $(STAMP)
	$(BIN)/python -m bench.gateway

## make bench-smoke: the benchmark on a few hundred events (also in make test): that it runs, not how fast
bench-smoke: $(STAMP)
	$(BIN)/pytest -q -p no:cacheprovider tests/integration/test_bench_smoke.py

## make soak: the overload soak (also in make test, 15 s of overload) with 120 s of overload: the worker
## offered twice its rate; RSS, lag, conservation and latency recovery printed (SOAK lines)
SOAK_SECONDS ?= 120
soak: $(STAMP)
	ACTIVITY_SOAK_OVERLOAD_S=$(SOAK_SECONDS) $(BIN)/pytest -q -s -p no:cacheprovider tests/integration/test_overload_soak.py

clean:
	rm -rf $(VENV) $(BENCH_VENV) $(VENV313) $(REPORTS) .pytest_cache .mypy_cache .ruff_cache .hypothesis build *.egg-info
