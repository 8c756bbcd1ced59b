# pgha: `make up` starts the local HA lab, `make test` runs the whole suite (lab included), `make check` is the
# contributor loop (lint, types, every test without the lab; no system packages installed). `make help` lists all.
# The venv is built from the system Python (/usr/bin/python3) so that the unprivileged
# user that runs PostgreSQL and Patroni in the lab can read it.
SYSTEM_PYTHON ?= /usr/bin/python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: help up down status plan config-table check test lint types bench bench-quick soak bench-diff bench-tenants \
	clean system venv format

help: ## this list
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/^([a-z-]+):.*## /\1\t/' \
		| awk -F'\t' '{ printf "  %-14s %s\n", $$1, $$2 }'

# Debian packages (PostgreSQL, etcd, cloud-init, ...): installs only what is missing. The targets that run
# PostgreSQL or the lab list `system` before the venv, so a fresh machine gets python3-venv first; the venv
# itself needs none of it beyond python3-venv, so lint/types/check never run apt.
system: ## install the missing Debian packages (as root; else print the one apt-get command)
	@scripts/system-packages

venv: $(VENV)/.installed ## the venv (from /usr/bin/python3) with requirements-dev.txt; no system packages

$(VENV)/.installed: requirements.txt requirements-lab.txt requirements-dev.txt
	test -x $(PY) || $(SYSTEM_PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

up: system $(VENV)/.installed ## start the local 3-node HA lab (system packages and venv first)
	$(PY) -m pgha lab up

status: $(VENV)/.installed ## the lab's members, roles, lag, DSNs
	$(PY) -m pgha lab status

down: $(VENV)/.installed ## stop every lab process
	$(PY) -m pgha lab down

plan: $(VENV)/.installed ## the program under mocks for STACK (default dev): what pulumi up would register
	$(PY) -m pgha plan --stack $(or $(STACK),dev)

# README.md's configuration table, generated from the fields of components/config.py (a test checks it)
config-table: $(VENV)/.installed ## regenerate README's configuration table
	$(PY) -m pgha.ci.config_table

lint: $(VENV)/.installed ## ruff (lint and format check), then the type checker (pyright, basic)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/basedpyright --pythonpath $(PY)

format: $(VENV)/.installed ## format the tree with ruff format
	$(VENV)/bin/ruff format .

types: $(VENV)/.installed ## the type checker alone
	$(VENV)/bin/basedpyright --pythonpath $(PY)

# the loop before a commit: lint + types + every test that needs no lab (the `lab` marker), no apt
check: lint ## lint + types + every test without the lab (-m "not lab"): minutes, installs no system packages
	$(PY) -m pytest -m "not lab" $(PYTEST_ARGS)

test: system $(VENV)/.installed lint ## lint + the whole suite, lab and drills included (what CI runs)
	$(PY) -m pytest $(PYTEST_ARGS)

# HA figures side by side in one run (tuned vs Patroni defaults, switchover, pg_rewind vs re-clone, lost
# commits): reports/bench.{json,md,png}; exits 1 when a target is missed. ~25 min at ROUNDS=5.
bench: system $(VENV)/.installed ## HA figures side by side (~25 min at ROUNDS=5)
	$(PY) bench/ha.py --rounds $(or $(ROUNDS),5) --out reports

bench-quick: system $(VENV)/.installed ## a one-round bench
	$(PY) bench/ha.py --quick --out reports

# DRILLS mixed lab drills back to back under continuous writes: reports/soak.{json,md,png}
soak: system $(VENV)/.installed ## DRILLS mixed lab drills under continuous writes
	$(PY) bench/soak.py --drills $(or $(DRILLS),24) --out reports

# `pgha diff` for dev and prod against BASE (default HEAD), timed in fresh processes: reports/diff.json;
# exits 1 when dev + prod take over the 10 s target
bench-diff: $(VENV)/.installed ## time pgha diff for dev and prod against BASE
	$(PY) bench/diff.py --base $(or $(BASE),HEAD) --rounds $(or $(ROUNDS),3) --json reports/diff.json

# tenant reads through RLS at 1,000,000 activity rows (a throwaway PostgreSQL; a few minutes)
bench-tenants: system $(VENV)/.installed ## tenant reads through RLS at 1,000,000 rows
	$(PY) bench/tenant_reads.py --json reports/tenant_reads.json --markdown reports/tenant_reads.md

clean: ## remove the venv and the caches
	rm -rf $(VENV) .pytest_cache .ruff_cache
