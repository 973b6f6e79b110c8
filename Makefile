# Salesline: one-command install, run and test on a Debian/Ubuntu machine.
# PostgreSQL/RabbitMQ are private to this checkout (scripts/infra.sh); `make run` uses the dev
# instance (.run, ports 55432/55672), `make test` and `make bench` a separate test instance
# (.run/test, ports 56432/56672), so tests never disturb a running `make run`.

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
INFRA := bash scripts/infra.sh

TEST_RUN_DIR ?= .run/test
TEST_DB_PORT ?= 56432
TEST_AMQP_PORT ?= 56672
ifeq ($(SALESLINE_EXTERNAL_INFRA),1)
# Existing PostgreSQL/RabbitMQ: keep the SALESLINE_DB_*/SALESLINE_AMQP_URL the user exported.
TEST_INFRA := RUN_DIR=$(TEST_RUN_DIR)
else
TEST_INFRA := RUN_DIR=$(TEST_RUN_DIR) SALESLINE_DB_PORT=$(TEST_DB_PORT) SALESLINE_AMQP_PORT=$(TEST_AMQP_PORT)
endif

PYTEST_ARGS ?=
BENCH_ARGS ?=
ALLOW_NO_TESTS ?=

export PYTHON VENV
export PYTHONPATH := $(CURDIR)$(if $(PYTHONPATH),:$(PYTHONPATH))

.PHONY: help install venv run stop status test test-scale test-stop lint fmt bench manifests clean distclean

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

install: ## OS packages (postgresql, rabbitmq-server, nginx) if missing, and .venv from requirements.lock
	$(INFRA) install

venv:
	$(INFRA) venv

run: install ## start PostgreSQL, RabbitMQ, migrations, every API and worker, the gateway (Ctrl-C stops all)
	$(INFRA) start
	$(PY) scripts/run_all.py

stop: ## stop `make run` and its PostgreSQL/RabbitMQ
	$(PYTHON) scripts/run_all.py --stop
	$(INFRA) stop

status: ## what runs, for the dev and the test instance
	@$(INFRA) status || true
	@$(TEST_INFRA) $(INFRA) status || true

# pytest exit 5 = no tests collected: a failure unless ALLOW_NO_TESTS=1.
test: export SALESLINE_TEST_TOOLS := 1
test: install ## all tests against the test instance's PostgreSQL/RabbitMQ (PYTEST_ARGS=...)
	$(TEST_INFRA) $(INFRA) start
	@rc=0; \
	$(TEST_INFRA) SALESLINE_ENVIRONMENT=test $(INFRA) exec $(PY) -m pytest $(PYTEST_ARGS) || rc=$$?; \
	if [ $$rc -eq 5 ]; then \
	  if [ "$(ALLOW_NO_TESTS)" = 1 ]; then echo "make test: no tests collected (allowed by ALLOW_NO_TESTS=1)"; rc=0; \
	  else echo "make test: no tests collected (pytest exit 5); ALLOW_NO_TESTS=1 accepts that" >&2; fi; \
	fi; \
	exit $$rc

# Twenty processes (run_all.py, REPLICAS=2) and hundreds of contracts: its own target, run by CI.
test-scale: install ## scale-out test: 2 replicas of every API and worker, workers killed mid-run
	$(TEST_INFRA) $(INFRA) start
	$(TEST_INFRA) SALESLINE_ENVIRONMENT=test $(INFRA) exec $(PY) -m pytest -m scale -rP tests/scale $(PYTEST_ARGS)

test-stop: ## stop the test instance's PostgreSQL/RabbitMQ
	$(TEST_INFRA) $(INFRA) stop

lint: venv ## ruff check + format check (changes nothing)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

fmt: venv ## sort imports and format with ruff
	$(VENV)/bin/ruff check --select I --fix .
	$(VENV)/bin/ruff format .

bench: install ## benchmarks against the test instance (BENCH_ARGS=...)
	$(TEST_INFRA) $(INFRA) start
	$(TEST_INFRA) SALESLINE_ENVIRONMENT=test $(INFRA) exec $(PY) -m benchmarks $(BENCH_ARGS)

manifests: venv ## rewrite deploy/k8s's generated manifests and Ingress from the services' routers
	$(PY) -m deploy.gateway generate

clean: ## stop everything and delete .run (databases, queues, logs)
	$(PYTHON) scripts/run_all.py --stop
	$(TEST_INFRA) $(INFRA) clean
	$(INFRA) clean
	rm -rf .run

distclean: clean ## clean, and delete .venv
	rm -rf $(VENV)
