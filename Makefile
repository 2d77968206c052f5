# One entry point for every job. `make help` lists them.
STACK  ?= dev
VENV   ?= .venv
# The interpreter the virtualenv is made from: the project needs Python 3.11 (pyproject.toml requires-python).
PYTHON ?= python3.11
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: help install plan test lint bench config-docs clean

help:
	@echo "make plan STACK=dev   offline plan of a stack into build/<stack>/ (no cloud account needed)"
	@echo "make test             lint, type-check and run every test"
	@echo "make bench            time the plan and the test suite"
	@echo "make config-docs      regenerate the stack-file schema and README's config table from the config models"
	@echo "make install          create $(VENV) with the pinned dependencies"

$(STAMP): requirements.txt requirements-dev.txt
	@version=$$($(PYTHON) -c 'import platform; print(platform.python_version())' 2>/dev/null); \
	case "$$version" in \
	  3.11.*) ;; \
	  "") echo "make: cannot run $(PYTHON). This project needs Python 3.11 (pyproject.toml: requires-python >=3.11,<3.12):" >&2; \
	      echo "make: install it (apt-get install python3.11, or pyenv install 3.11), or run make PYTHON=/path/to/python3.11" >&2; \
	      exit 1 ;; \
	  *) echo "make: $(PYTHON) is Python $$version; this project needs Python 3.11 (pyproject.toml: requires-python)." >&2; \
	     echo "make: run make PYTHON=/path/to/python3.11" >&2; \
	     exit 1 ;; \
	esac
	$(PYTHON) -m venv $(VENV)
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

config-docs: $(STAMP)
	$(PY) -m components.config_docs

bench: $(STAMP)
	$(PY) -m offline.bench

clean:
	rm -rf build .pytest_cache .mypy_cache .ruff_cache
