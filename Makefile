# streamtune: `make demo` runs the whole loop on this machine, `make test` runs every test.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PACKAGES := shared services/ingestion services/anonymizer services/trainer services/predictor services/cli
STACK := $(BIN)/python deploy/local/stack.py
PYTEST_ARGS ?=

.PHONY: install test test-unit demo up down pii-model bench docs clean gpu-check

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "streamtune needs Python 3.11 (set PYTHON=...)")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# torch first and pinned, so no later requirement pulls a multi-GB CUDA build.
$(STAMP): $(BIN)/python requirements-dev.txt $(addsuffix /pyproject.toml,$(PACKAGES))
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e 'shared[datasets]' $(addprefix -e ,$(filter services/%,$(PACKAGES))) -r requirements-dev.txt
	@touch $@

install: $(STAMP)

# The integration and e2e tests start Redis and S3 themselves when needed (conftest's infra_env),
# as do the demo and the benchmarks (stack.up()).
test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-unit: install
	$(BIN)/python -m pytest -m "unit or component" $(PYTEST_ARGS)

demo: install
	$(BIN)/python deploy/local/demo.py

up: install
	@$(STACK) up
	$(BIN)/python deploy/local/processes.py start

# The running stack's own PII model: synthetic set imported, pii-ner trained and published (make up first).
pii-model: install
	$(BIN)/python deploy/local/train_pii_model.py

down:
	-@$(BIN)/python deploy/local/processes.py stop
	-@$(STACK) down

# Presidio (the PII baseline bench_pii measures against) is installed for the benchmarks only.
bench: install
	$(BIN)/pip install -q -r tests/bench/requirements.txt
	$(BIN)/python tests/bench/bench_dataplane.py
	$(BIN)/python tests/bench/bench_predictor.py
	$(BIN)/python tests/bench/bench_training.py
	$(BIN)/python tests/bench/bench_methods.py --max-train-sentences 600 --max-dev-sentences 200 --epochs 1 --threads 1
	$(BIN)/python tests/bench/bench_pii.py
	$(BIN)/python tests/bench/bench_pii_utility.py
	$(BIN)/python tests/bench/bench_anomaly.py
	$(BIN)/python tests/bench/bench_sensor_predictions.py

# A few steps of each adaptation method with bf16 and fp32 on CUDA, with a checkpoint resume; says so and exits 0
# where there is no CUDA device.
gpu-check: install
	$(BIN)/python tests/bench/gpu_check.py

# The wire contract (docs/asyncapi.yaml) and the HTTP APIs (docs/openapi/*.json), generated from the code;
# tests/unit/test_docs.py fails when the committed files are stale.
docs: install
	$(BIN)/python docs/write_docs.py

clean: down
	rm -rf .stack
