# One entry point for people and CI. `make demo` and `make test` each do all set-up first.
VENV ?= .venv
BIN := $(abspath $(VENV))/bin
export PATH := $(BIN):$(PATH)

.PHONY: setup demo test test-fast lint bench bench-load bench-stages

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml scripts/setup.sh
	VENV=$(VENV) scripts/setup.sh

demo: setup
	maskwatch db upgrade
	maskwatch analyze worker/samples/people.mp4 --camera demo-cam --site demo

# The full suite: real PostgreSQL, Redis, worker processes, models over video, training.
test: lint
	scripts/ensure-services.sh
	python -m pytest

# After a one-line change: no services (SQLite only), no training, nothing marked slow.
test-fast: setup
	MASKWATCH_TEST_NO_POSTGRES=1 python -m pytest -q -n 2 -m "not slow and not postgres"

# ruff, mypy, and the import contracts in pyproject.toml (layers one way down, no cycles,
# the service apart from the model lab).
lint: setup
	ruff check .
	mypy maskwatch worker storage api ml
	PYTHONPATH=. lint-imports

# default (motion-gated) against --exhaustive on the same clips, stage by stage, in one run;
# start-up apart (`maskwatch --help`, the analysis path's imports, model load); then
# `maskwatch analyze` beside a busy loop per core against the same command without them
bench: setup
	python scripts/bench_people.py

# the CLI with and without one busy loop per core, shipped against the old single process
# (slow: four whole analyses of a generated clip)
bench-load: setup
	python scripts/bench_people.py --under-load --skip-modes

bench-stages: setup
	python scripts/bench.py
