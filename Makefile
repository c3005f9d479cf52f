# deepwave_tf: every target creates/uses .venv itself.
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
SAMPLE := data/sample
DEMO   := runs/demo
export TF_CPP_MIN_LOG_LEVEL ?= 2
export PYTHONHASHSEED ?= 0

.PHONY: help venv demo test test-slow bench lint format clean

help:
	@echo "make demo       prep -> fit -> export -> submit -> evaluate on $(SAMPLE)"
	@echo "make test       the test suite (creates .venv if missing)"
	@echo "make test-slow  the slow tests too"
	@echo "make bench      benchmarks/ (prints figures)"
	@echo "make lint       ruff"

venv: $(STAMP)

$(STAMP): setup.cfg pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

demo: $(STAMP)
	$(PY) -m deepwave_tf.demo --data $(SAMPLE) --records tfrecords/sample --run-dir $(DEMO)

test: $(STAMP)
	$(PY) -m pytest -q

test-slow: $(STAMP)
	$(PY) -m pytest -q -m slow

bench: $(STAMP)
	$(PY) benchmarks/bench_prep.py
	$(PY) benchmarks/bench_train.py
	$(PY) benchmarks/bench_infer.py
	$(PY) benchmarks/bench_tune.py
	$(PY) benchmarks/bench_vocode.py

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

clean:
	rm -rf runs tfrecords/sample .pytest_cache
