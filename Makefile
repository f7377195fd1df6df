# Tally: `make run` (tool + sandbox LMS) and `make test` do all set-up on a fresh machine.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: run test bench migrate keys install clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[test,prod]'
	touch $(STAMP)

install: $(STAMP)

migrate: $(STAMP)
	$(PY) -m tool db upgrade

keys: $(STAMP)
	$(PY) -m tool keys generate

## Start Tally on http://127.0.0.1:8000 and the sandbox LMS on http://127.0.0.1:8001
## (TOOL_PORT / SANDBOX_PORT override). `run` migrates and makes keys itself.
run: $(STAMP)
	$(PY) -m tool run

## The whole suite on the configured database (SQLite unless TOOL_DATABASE_URL is set).
test: $(STAMP)
	$(PY) -m pytest -q -p no:cacheprovider $(PYTEST_ARGS)

## Benchmarks: each compares against its baseline and ends with one line of JSON
## (benchmarks/_support.py is their shared code, not a benchmark).
bench: $(STAMP)
	@for script in benchmarks/[!_]*.py; do echo "== $$script"; $(PY) $$script || exit 1; done

clean:
	rm -rf $(VENV) var/*.db var/*.db-* .pytest_cache
