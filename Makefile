# One entry point for people and CI. `make demo` and `make test` each do all set-up first.
VENV ?= .venv
BIN := $(abspath $(VENV))/bin
export PATH := $(BIN):$(PATH)

.PHONY: setup demo test lint bench bench-stages

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml scripts/setup.sh
	VENV=$(VENV) scripts/setup.sh

demo: setup
	maskwatch db upgrade
	maskwatch analyze worker/samples/people.mp4 --camera demo-cam --site demo

test: setup
	scripts/ensure-services.sh
	python -m pytest

lint: setup
	ruff check .
	mypy maskwatch worker storage api

# default (motion-gated) against --exhaustive on the same clips, stage by stage, in one run
bench: setup
	python scripts/bench_people.py

bench-stages: setup
	python scripts/bench.py
