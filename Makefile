# The front door: `make dev` runs the service locally, `make test` runs the suite. `make` lists the targets.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
# The project's venv: exactly the set uv.lock pins (runtime and dev, with hashes), installed by uv, which is itself
# pinned by hash in deploy/uv-requirements.txt and bootstrapped into .data/uv. A sync re-runs whenever
# pyproject.toml, uv.lock or the uv pin is newer than the stamp.
VENV ?= .venv
STAMP := $(VENV)/.installed
UV_HOME := .data/uv
UV := $(UV_HOME)/bin/uv
# uv runs the machine's python3 and never downloads an interpreter.
export UV_PYTHON_DOWNLOADS := never
# Where `make dev` listens; the same names as the service's own settings.
SYNCSVC_HOST ?= 127.0.0.1
SYNCSVC_PORT ?= 8080
REDIS_PORT ?= 6379
KAFKA_PORT ?= 9092
KAFKA_CONTROLLER_PORT ?= 9093
# How many Kafka nodes `make kafka` runs: 1, or a cluster (3: ports 9092/9094/9096, a 3-voter controller quorum,
# replication factor 3 and minimum ISR 2; see deploy/kafka.sh).
KAFKA_BROKERS ?= 1
PYTEST_ARGS ?=
# deploy/kafka.sh checks a broker's readiness with aiokafka from this venv.
KAFKA_PYTHON := $(abspath $(VENV))/bin/python
export REDIS_PORT KAFKA_PORT KAFKA_CONTROLLER_PORT KAFKA_BROKERS KAFKA_PYTHON

.PHONY: help venv lock test-latest redis-bin redis redis-stop kafka-bin kafka kafka-stop services services-stop credentials root-key dev test fuzz openapi soak \
  wrk-bin softhsm-bin chromium-bin screenshots bench chaos lint fmt clean distclean

help: ## list the targets
	@echo "usage: make TARGET   (quickstart: make dev, make test)"
	@awk 'BEGIN { FS = ":.*## " } /^[a-z-]+:.*## / { printf "  %-14s %s\n", $$1, $$2 }' $(MAKEFILE_LIST)

venv: $(STAMP) ## create .venv holding exactly the locked dependencies (uv.lock) and the project, with its [dev] extras

$(UV): deploy/uv-requirements.txt
	$(PYTHON) -m venv --clear $(UV_HOME)
	$(UV_HOME)/bin/pip install --quiet --disable-pip-version-check --require-hashes --only-binary :all: \
	  --requirement deploy/uv-requirements.txt
	touch $@

# --locked: uv refuses a lock that pyproject.toml has moved away from, instead of quietly re-resolving it.
$(STAMP): pyproject.toml uv.lock $(UV)
	@$(UV) lock --check --quiet --python $(PYTHON) || \
	  { echo "uv.lock does not match pyproject.toml: run 'make lock' and commit uv.lock" >&2; exit 1; }
	UV_PROJECT_ENVIRONMENT=$(VENV) $(UV) sync --locked --extra dev --python $(PYTHON) --quiet
	touch $@

# $(call compile,IN,TXT): every package of IN (and what it needs) pinned to its newest version, with hashes.
compile = $(UV) pip compile $(1) --upgrade --generate-hashes --python-version 3.11 --python-platform linux --quiet \
  --custom-compile-command 'make lock' --output-file $(2)

lock: $(UV) ## refresh uv.lock (and the pinned uv, the benchmark's peers) to the newest versions the ranges allow
	$(UV) lock --upgrade --python $(PYTHON)
	$(call compile,deploy/uv.in,deploy/uv-requirements.txt)
	$(call compile,bench/peers/kinto.in,bench/peers/kinto.txt)
	cd bench/peers/pouchdb && rm -f package-lock.json && \
	  npm install --package-lock-only --ignore-scripts --no-audit --no-fund --loglevel=error
	@git diff --stat -- uv.lock deploy/uv-requirements.txt bench/peers/

# A throwaway venv resolved fresh from pyproject.toml's ranges (not the lock): a breaking upstream release shows here
# before `make lock` takes it in.
LATEST_VENV := .data/latest-venv
test-latest: $(UV) redis-bin kafka-bin wrk-bin ## make lint + make test in a venv of the newest versions the ranges allow
	rm -rf $(LATEST_VENV)
	$(UV) venv --quiet --python $(PYTHON) $(LATEST_VENV)
	$(UV) pip install --quiet --python $(LATEST_VENV)/bin/python --upgrade --editable '.[dev]'
	$(LATEST_VENV)/bin/python -m pip list --format=freeze >$(LATEST_VENV)/resolved.txt
	@echo "test-latest: the versions resolved today are in $(LATEST_VENV)/resolved.txt"
	touch $(LATEST_VENV)/.installed
	$(MAKE) lint test VENV=$(LATEST_VENV)

redis-bin: ## install redis-server (Debian package) unless it is on the PATH
	@deploy/redis.sh install

redis: redis-bin ## make sure the project's redis-server (AOF, data in .data/redis) answers on 127.0.0.1:6379 (REDIS_PORT)
	@deploy/redis.sh start

redis-stop: ## stop the project's redis-server
	@deploy/redis.sh stop

kafka-bin: ## fetch the pinned Apache Kafka broker jars from Maven Central into .data/kafka/libs (once)
	@deploy/kafka.sh install

# The venv too: the broker counts as started once aiokafka gets an answer to a metadata request.
kafka: venv kafka-bin ## make sure the project's Kafka broker (KRaft, data in .data/kafka) answers on 127.0.0.1:9092 (KAFKA_PORT; KAFKA_BROKERS=3: a cluster)
	@deploy/kafka.sh start

kafka-stop: ## stop the project's Kafka broker, or every node of its cluster
	@deploy/kafka.sh stop

services: redis kafka ## start Redis and Kafka alone (for a syncsvc run by hand) and print their addresses
	@echo; \
	echo "  SYNCSVC_REDIS_URL=redis://127.0.0.1:$(REDIS_PORT)/0"; \
	echo "  SYNCSVC_KAFKA_BOOTSTRAP=$$(deploy/kafka.sh bootstrap)"; \
	echo "  ('make services-stop' stops both)"

services-stop: redis-stop kafka-stop ## stop the project's Redis and Kafka

credentials: ## generate developer credentials once (unless SYNCSVC_DEVELOPER_CREDENTIALS is set)
	@deploy/credentials.sh ensure

root-key: venv ## create the KMS root key in .data/root.key once (it wraps every key: back it up)
	@$(VENV)/bin/syncsvc keys root-key .data/root.key

# exec: the server replaces the recipe's shell, so Ctrl-C and signals reach it directly.
dev: venv redis kafka softhsm-bin credentials root-key ## venv + redis + kafka + credentials, then syncsvc in the foreground on http://127.0.0.1:8080 (SYNCSVC_HOST, SYNCSVC_PORT)
	@SYNCSVC_DEVELOPER_CREDENTIALS="$$(deploy/credentials.sh value)"; \
	SYNCSVC_REDIS_URL="redis://127.0.0.1:$(REDIS_PORT)/0"; \
	SYNCSVC_KAFKA_BOOTSTRAP="$$(deploy/kafka.sh bootstrap)"; \
	SYNCSVC_ROOT_KEY_FILE="$${SYNCSVC_ROOT_KEY_FILE:-.data/root.key}"; \
	export SYNCSVC_DEVELOPER_CREDENTIALS SYNCSVC_REDIS_URL SYNCSVC_KAFKA_BOOTSTRAP SYNCSVC_ROOT_KEY_FILE; \
	deploy/dev-banner.sh "http://$(SYNCSVC_HOST):$(SYNCSVC_PORT)"; \
	exec $(VENV)/bin/syncsvc serve --host "$(SYNCSVC_HOST)" --port "$(SYNCSVC_PORT)"

# The suite starts its own redis-server and Kafka broker on free ports; it only needs the binaries and the jars
# (wrk for the benchmark's smoke test).
# Then the end-to-end modules of every surface again, on a Redis Cluster the suite starts (3 masters, 1 replica each):
# the same boto3 flows, against redis-py's cluster client, scripts pinned to one slot each.
CLUSTER_SUITE := tests/test_sync_records.py tests/test_sync_datasets.py tests/test_identity_flows.py \
  tests/test_identity_pools.py tests/test_kms_api.py tests/test_kms_grants.py tests/test_encryption_at_rest.py \
  tests/test_push.py tests/test_push_instances.py tests/test_relay.py tests/test_bulk_publish.py \
  tests/test_sync_triggers.py tests/test_cognito_events.py tests/test_admin_cli.py tests/test_stream_tail.py \
  tests/test_push_watch.py tests/test_kms_cli.py tests/test_root_rotation.py tests/test_issuer.py tests/test_outbox.py \
  tests/test_guest_merge.py tests/test_import_target.py tests/test_import.py tests/test_userpools_directory.py \
  tests/test_userpools_signin.py tests/test_console.py
# Each phase runs on TEST_WORKERS processes (pytest-xdist), a test module and its fixtures on one of them; each
# worker starts its own Redis and Kafka. TEST_WORKERS=0 runs a phase in this process alone. The fuzz module runs on
# its own: schemathesis's generated tests do not run under pytest-xdist (they are collected, then left out).
TEST_WORKERS ?= 2
XDIST := $(if $(filter 0,$(TEST_WORKERS)),,-n $(TEST_WORKERS) --dist loadfile)
test: venv redis-bin kafka-bin wrk-bin softhsm-bin chromium-bin ## run the test suite, then its end-to-end modules on a Redis Cluster (extra pytest flags: PYTEST_ARGS="-k vv -x")
	$(VENV)/bin/pytest -q $(XDIST) --ignore=tests/test_fuzz.py $(PYTEST_ARGS)
	$(VENV)/bin/pytest -q $(PYTEST_ARGS) tests/test_fuzz.py
	SYNCSVC_TEST_REDIS=cluster $(VENV)/bin/pytest -q $(XDIST) -m "not cluster" $(PYTEST_ARGS) $(CLUSTER_SUITE)

# The long schema-driven fuzz run: tests/test_fuzz.py with FUZZ_EXAMPLES examples per operation (make test: 10), new
# ones every run (make test: the same ones), from FUZZ_SEED: `make fuzz FUZZ_SEED=N` runs a reported run's examples again.
FUZZ_EXAMPLES ?= 150
ifndef FUZZ_SEED
FUZZ_SEED := $(shell od -An -N4 -tu4 /dev/urandom | tr -d ' ')
endif
fuzz: venv redis-bin ## fuzz every operation of docs/openapi.json against a real server, FUZZ_EXAMPLES (150) each, random
	@echo "fuzz: seed $(FUZZ_SEED) (make fuzz FUZZ_SEED=$(FUZZ_SEED) runs the same examples again)"
	SYNCSVC_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) SYNCSVC_FUZZ_RANDOM=1 SYNCSVC_FUZZ_SEED=$(FUZZ_SEED) SYNCSVC_FUZZ_REFUSED=1 \
	  $(VENV)/bin/pytest -q -o timeout=1800 --hypothesis-seed=$(FUZZ_SEED) $(PYTEST_ARGS) tests/test_fuzz.py

wrk-bin: ## install the load generator wrk (Debian package) unless it is on the PATH
	@command -v wrk >/dev/null || { \
	  sudo=(); [[ $$(id -u) -eq 0 ]] || sudo=(sudo); \
	  "$${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null 2>&1 || { \
	    "$${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	    "$${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk; }; }

# KMS custom key stores talk to a PKCS#11 module: SoftHSM2's in the suite (it makes its own tokens) and for `make dev`.
softhsm-bin: ## install SoftHSM2 (Debian package softhsm2: a PKCS#11 token in files) unless softhsm2-util is on the PATH
	@command -v softhsm2-util >/dev/null || { \
	  sudo=(); [[ $$(id -u) -eq 0 ]] || sudo=(sudo); \
	  "$${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq softhsm2 >/dev/null 2>&1 || { \
	    "$${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	    "$${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq softhsm2; }; }

# The console's browser tests drive Debian's Chromium through Debian's chromedriver: nothing is downloaded at test time.
chromium-bin: ## install headless Chromium and its WebDriver (Debian packages chromium, chromium-driver) unless on the PATH
	@{ command -v chromium >/dev/null && command -v chromedriver >/dev/null; } || { \
	  sudo=(); [[ $$(id -u) -eq 0 ]] || sudo=(sudo); \
	  "$${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null 2>&1 || { \
	    "$${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	    "$${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver; }; }

screenshots: venv redis-bin chromium-bin ## run the console's browser tests, saving its main pages into docs/console/
	SYNCSVC_SCREENSHOTS=docs/console $(VENV)/bin/pytest -q tests/test_console_browser.py

# The run starts its own Redis, Kafka, syncsvc processes and peers (Kinto on PostgreSQL, PouchDB Server: installed
# into .data/bench on first use), ~30 min. BENCH_ARGS="--skip-peers --repeats 1" for a quicker look.
BENCH_ARGS ?=
openapi: venv ## write docs/openapi.json: the OpenAPI 3.1 document the server serves at /openapi.json
	$(VENV)/bin/python -m syncsvc.api.openapi > docs/openapi.json

# 30 minutes at half the peak with push sockets and a stream consumer on; report in bench/results/soak/.
SOAK_ARGS ?=
soak: venv redis-bin kafka-bin wrk-bin ## 30 min at half the peak (push + stream on): RSS, open files, Redis memory, relay lag; bench/results/soak/
	$(VENV)/bin/python -m bench.soak $(SOAK_ARGS)

bench: venv redis-bin kafka-bin wrk-bin ## run every benchmark workload against syncsvc and its peers; report in bench/results/
	$(VENV)/bin/python -m bench.run $(BENCH_ARGS)

# Its own Redis (AOF, fsync always), Kafka broker, two `syncsvc serve` and a relay, in a temporary folder; a random
# seed, printed first (CHAOS_ARGS="--seed 7 --seconds 60" to replay or shorten). A failing run keeps its history.
CHAOS_ARGS ?=
chaos: venv redis-bin kafka-bin ## 5 minutes of random syncs while a nemesis kills and pauses the processes, then the history checker (issue 21)
	$(VENV)/bin/python -m chaos --seconds 300 --history-out .data/chaos-history.jsonl $(CHAOS_ARGS)

# Runs every checker before failing, so one run shows all the problems.
lint: venv ## ruff check, ruff format --check, mypy --strict, the layer contracts (lint-imports; docs/architecture.md)
	@status=0; \
	(set -x; $(VENV)/bin/ruff check .) || status=1; \
	(set -x; $(VENV)/bin/ruff format --check .) || status=1; \
	(set -x; $(VENV)/bin/mypy) || status=1; \
	(set -x; $(VENV)/bin/lint-imports --no-cache) || status=1; \
	exit $$status

fmt: venv ## format the code and apply ruff's safe fixes
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

clean: ## remove tool caches
	rm -rf .pytest_cache .mypy_cache .ruff_cache .grimp_cache .import_linter_cache
	find . -path ./$(VENV) -prune -o -type d -name __pycache__ -exec rm -rf {} +

distclean: services-stop clean ## also remove .venv and .data (redis and kafka data, kafka jars, developer credentials)
	rm -rf $(VENV) .data build dist *.egg-info
