# Two entry points for a fresh machine: `make demo` and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench clean

$(PY):
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install -q -e '.[test,tokenizer]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/bench-metrics demo

lint: $(STAMP)
	$(VENV)/bin/ruff check registry exporter tests bench
	$(VENV)/bin/ruff format --check registry exporter tests bench
	$(VENV)/bin/mypy registry exporter

test: lint
	$(PY) -m pytest -q -n 2 tests

# Every speed figure with its same-run baseline (several minutes on 2 cores).
bench: $(STAMP)
	$(PY) bench/registry.py
	$(PY) bench/delivery.py
	$(PY) bench/aggregator.py
	$(PY) bench/exporter.py
	$(PY) bench/synthetic_load.py
	$(PY) bench/store.py
	$(PY) bench/tokenizer.py
	$(PY) bench/report.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
