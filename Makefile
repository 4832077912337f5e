# One entry point per job. `make demo` and `make test` work on a fresh machine: they install what
# is missing (Python packages in .venv, Redis, PostgreSQL 15, TimescaleDB built from source).
PY      := .venv/bin/python
SLUICE  := .venv/bin/sluice
SERVICES := bash scripts/services.sh
# An installed sluice keeps its files in ~/.sluice; here, the checkout's own (unless set).
export SLUICE_HOME ?= $(CURDIR)/.sluice
export SLUICE_DATASETS ?= $(CURDIR)/datasets.yaml

.PHONY: install services demo test unit integration slow lint typecheck bench down clean

install: .venv/.installed
.venv/.installed: pyproject.toml
	bash scripts/bootstrap.sh
	touch $@

services: install
	$(SERVICES) up

demo: install
	$(SERVICES) up
	$(SLUICE) demo

test: install  # the tooling (scripts/test.sh), then every test
	bash scripts/test.sh

unit: install  # no services needed
	$(PY) -m pytest -q -m unit

integration: install  # the local Redis and PostgreSQL, started if down
	bash scripts/test.sh -q -m integration

slow: install  # private stacks, real Prefect servers, wheels
	bash scripts/test.sh -q -m slow

lint: install  # ruff format, ruff, mypy strict, shellcheck
	bash scripts/lint.sh

typecheck: install
	.venv/bin/mypy

bench: install  # QUICK=1: small sizes, one round (a smoke run); writes bench/RESULTS.md
	$(PY) -m bench.run $(if $(QUICK),--quick)

down:
	$(SERVICES) down

clean: down
	rm -rf .sluice
