# deepwave_tf: every target creates/uses .venv itself.
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
SAMPLE := data/sample
DEMO   := runs/demo
export TF_CPP_MIN_LOG_LEVEL ?= 2
export PYTHONHASHSEED ?= 0
# test processes (pytest-xdist); 0 runs the suite in this process, as before
TEST_WORKERS ?= 2

.PHONY: help venv demo demo-text text-sample test test-slow test-distributed bench lint format clean browser

help:
	@echo "make demo       prep -> fit -> export -> submit -> evaluate on $(SAMPLE)"
	@echo "make demo-text  text model: fit -> export -> evaluate -> predict on data/text_sample"
	@echo "make text-sample  rebuild data/text_sample (csv + vectors.vec; needs ../shared/data/texts, gensim)"
	@echo "make test       the test suite (creates .venv if missing; TEST_WORKERS=2 processes)"
	@echo "make test-slow  the slow tests too"
	@echo "make test-distributed  two fit workers and a tuner chief + 2 workers on 127.0.0.1"
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

demo-text: $(STAMP)
	$(PY) -m deepwave_tf.text.demo --data data/text_sample --run-dir runs/demo-text

TEXTS ?= ../shared/data/texts
text-sample: $(STAMP)
	$(PY) -m pip install --quiet -e '.[build]'
	$(PY) scripts/make_text_sample.py --texts $(TEXTS) --out data/text_sample

# The upload page's test drives a real headless chromium. Installed here only as root with
# apt-get and only when missing; never fails the target (the test then skips, saying why).
browser:
	@if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then \
		true; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing chromium + chromium-driver for the browser test"; \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get install -y -qq chromium chromium-driver >/dev/null 2>&1 \
		|| (apt-get update -qq && apt-get install -y -qq chromium chromium-driver >/dev/null 2>&1) \
		|| echo "warning: could not install chromium; the browser test will be skipped"; \
	else \
		echo "note: no chromium + chromedriver (needs root and apt-get): the browser test will be skipped"; \
	fi

test: $(STAMP) browser
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist worksteal

test-slow: $(STAMP) browser
	$(PY) -m pytest -q -m slow

# Multi-worker fit and distributed tuning on 127.0.0.1 (several processes; minutes on 2 cores).
test-distributed: $(STAMP)
	$(PY) -m pytest -q -m "slow or not slow" tests/test_distributed.py

bench: $(STAMP)
	$(PY) -m pip install --quiet -e '.[bench]'
	$(PY) benchmarks/bench_prep.py
	$(PY) benchmarks/bench_prep_beam.py
	$(PY) benchmarks/bench_frontends.py
	$(PY) benchmarks/bench_train.py
	$(PY) benchmarks/bench_infer.py
	$(PY) benchmarks/bench_tune.py
	$(PY) benchmarks/bench_serve.py
	$(PY) benchmarks/bench_cli.py
	$(PY) benchmarks/bench_vocode.py
	$(PY) benchmarks/bench_distributed.py

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

clean:
	rm -rf runs tfrecords/sample .pytest_cache
