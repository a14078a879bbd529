# The two commands: `make up` runs glimpse on the embedded stack, `make test` runs the suite.
# Both install what they need first (idempotent: a stamp file skips work already done).
PY ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: up down status test lint bench bench-scaling chaos backfill-1k setup system-deps clean

up: setup
	$(BIN)/glimpse up

down:
	$(BIN)/glimpse down

status:
	$(BIN)/glimpse status

test: setup
	@./scripts/system-deps.sh test
	$(BIN)/pytest -q

lint: setup
	$(BIN)/ruff check glimpse services tests bench
	$(BIN)/ruff format --check glimpse services tests bench
	$(BIN)/mypy

bench: setup
	$(BIN)/python -m bench.ingest

# throughput with 1, 2 and 4 processes per stage; appends to bench/RESULTS.md (~15 min)
bench-scaling: setup
	$(BIN)/python -m bench.scaling

# kill -9 every kind of process under steady uploads; appends to bench/RESULTS.md (~10 min)
chaos: setup
	$(BIN)/python -m bench.chaos

# issue 10's real-stack check at full size: 1,000 objects the pipeline has no row for,
# `backfill --stage ingest --missing` interrupted half-way and resumed (~10 min quiet)
backfill-1k: setup
	GLIMPSE_BACKFILL_TEST_OBJECTS=1000 $(BIN)/pytest -q \
		"tests/integration/test_backfill.py::test_ingest_backfill_interrupted_half_way_resumes_and_processes_each_object_once"

setup: system-deps $(STAMP)

system-deps:
	@./scripts/system-deps.sh

$(STAMP): pyproject.toml
	@echo "==> creating virtualenv in $(VENV) and installing glimpse (first run takes a few minutes)"
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	@# torch first, pinned, so no other package can pull a CUDA build
	@echo "==> installing torch 2.13.0 (CPU build)"
	@$(BIN)/pip install --progress-bar on torch==2.13.0
	@echo "==> installing glimpse and its dependencies"
	@$(BIN)/pip install --progress-bar on -e '.[dev]'
	@touch $(STAMP)

clean:
	rm -rf $(VENV)
