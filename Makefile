# Two entry points for a fresh machine: `make demo` and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench clean

$(PY):
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/bench-metrics demo

lint: $(STAMP)
	$(VENV)/bin/ruff check registry exporter tests bench
	$(VENV)/bin/ruff format --check registry exporter tests bench
	$(VENV)/bin/mypy registry exporter

test: lint
	$(PY) -m pytest -q tests

bench: $(STAMP)
	$(PY) bench/registry.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
