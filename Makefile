# pgha: `make up` starts the local HA lab, `make test` runs the whole suite (lab included).
# The venv is built from the system Python (/usr/bin/python3) so that the unprivileged
# user that runs PostgreSQL and Patroni in the lab can read it.
SYSTEM_PYTHON ?= /usr/bin/python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: up down status plan config-table test lint bench bench-quick soak bench-diff bench-tenants clean system

# Debian packages first (PostgreSQL, etcd, cloud-init, ...): installs only what is missing.
system:
	@scripts/system-packages

$(VENV)/.installed: requirements.txt requirements-lab.txt requirements-dev.txt | system
	test -x $(PY) || $(SYSTEM_PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

up: system $(VENV)/.installed
	$(PY) -m pgha lab up

status: $(VENV)/.installed
	$(PY) -m pgha lab status

down: $(VENV)/.installed
	$(PY) -m pgha lab down

plan: $(VENV)/.installed
	$(PY) -m pgha plan --stack $(or $(STACK),dev)

# README.md's configuration table, generated from the fields of components/config.py (a test checks it)
config-table: $(VENV)/.installed
	$(PY) -m pgha.ci.config_table

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .

test: system $(VENV)/.installed lint
	$(PY) -m pytest $(PYTEST_ARGS)

# HA figures side by side in one run (tuned vs Patroni defaults, switchover, pg_rewind vs re-clone, lost
# commits): reports/bench.{json,md,png}; exits 1 when a target is missed. ~25 min at ROUNDS=5.
bench: system $(VENV)/.installed
	$(PY) bench/ha.py --rounds $(or $(ROUNDS),5) --out reports

bench-quick: system $(VENV)/.installed
	$(PY) bench/ha.py --quick --out reports

# DRILLS mixed lab drills back to back under continuous writes: reports/soak.{json,md,png}
soak: system $(VENV)/.installed
	$(PY) bench/soak.py --drills $(or $(DRILLS),24) --out reports

# `pgha diff` for dev and prod against BASE (default HEAD), timed in fresh processes: reports/diff.json;
# exits 1 when dev + prod take over the 10 s target
bench-diff: $(VENV)/.installed
	$(PY) bench/diff.py --base $(or $(BASE),HEAD) --rounds $(or $(ROUNDS),3) --json reports/diff.json

# tenant reads through RLS at 1,000,000 activity rows (a throwaway PostgreSQL; a few minutes)
bench-tenants: system $(VENV)/.installed
	$(PY) bench/tenant_reads.py --json reports/tenant_reads.json --markdown reports/tenant_reads.md

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
