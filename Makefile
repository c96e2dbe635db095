# The two commands that matter on a fresh machine:
#   make demo   installs everything, sets up the demo and serves it on http://127.0.0.1:8000
#   make test   installs everything and runs the whole test suite (PostgreSQL, Redis, then SQLite)
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
# The test databases. PostgreSQL with trust auth on 127.0.0.1 (CI), and the embedded SQLite default.
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/candor

.PHONY: install demo test test-postgres test-sqlite lint bench

$(VENV)/.installed: requirements.txt requirements-dev.txt
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -r requirements-dev.txt
	touch $@

install: $(VENV)/.installed

demo: install
	bash scripts/demo.sh

test: install
	$(MAKE) --no-print-directory test-postgres test-sqlite

# The whole suite on PostgreSQL, slow end-to-end tests included.
test-postgres: install
	DATABASE_URL=$(TEST_DATABASE_URL) $(PY) -m pytest -q

# The same suite on the embedded SQLite default with the filesystem broker, end-to-end tests included
# (the slow training-only runs touch no database and ran above).
test-sqlite: install
	env -u DATABASE_URL -u CELERY_BROKER_URL $(PY) -m pytest -q -m "e2e or not slow"

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
