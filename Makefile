# One entry point for every job. `make help` lists them.
STACK ?= dev
VENV  ?= .venv
PY    := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: help install plan test lint bench clean

help:
	@echo "make plan STACK=dev   offline plan of a stack into build/<stack>/ (no cloud account needed)"
	@echo "make test             lint, type-check and run every test"
	@echo "make bench            time the plan and the test suite"
	@echo "make install          create $(VENV) with the pinned dependencies"

$(STAMP): requirements.txt requirements-dev.txt
	python3.11 -m venv $(VENV) 2>/dev/null || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

NODE_STAMP := node_modules/.installed

# gitlab-ci-local (and the Node 22 it needs) for the end-to-end test, pinned in package-lock.json.
$(NODE_STAMP): $(wildcard package-lock.json)
	@if [ -f package-lock.json ]; then npm ci --no-audit --no-fund --loglevel=error; fi
	@mkdir -p node_modules && touch $(NODE_STAMP)

install: $(STAMP) $(NODE_STAMP)

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy

test: lint $(NODE_STAMP)
	$(PY) -m pytest

plan: $(STAMP)
	$(PY) -m offline.plan $(STACK)

bench: $(STAMP)
	$(PY) -m offline.bench

clean:
	rm -rf build .pytest_cache .mypy_cache .ruff_cache
