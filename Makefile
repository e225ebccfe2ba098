# poolguard — `make` or `make help` lists every target.
SHELL := /usr/bin/env bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

COMPOSE      := scripts/compose.sh
DEV          := $(COMPOSE) -f docker-compose.dev.yml
PROD         := $(COMPOSE) -f docker-compose.prod.yml
SIDECAR_PORT  = $$(grep -E '^PUBLISH_SIDECAR_PORT=' .env 2>/dev/null | cut -d= -f2- || true)
env_get       = $$(grep -E '^$(1)=' .env | tail -n1 | cut -d= -f2-)

.PHONY: help setup env build up down ps logs health migrate psql psql-direct pgbouncer-admin \
        prod-secrets prod-up prod-down prod-ps test test-unit test-e2e test-fault bench lint clean

help: ## List every target
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_-]+:.*## / {printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

setup: ## Install/start the Docker engine, Compose v2 and the base image when missing (idempotent)
	@scripts/ensure-docker.sh
	@scripts/prepare-build.sh

env: ## Create .env from .env.example when missing
	@scripts/ensure-env.sh

build: setup ## Build every image (postgres, pgbouncer, redis, migrate, sidecar)
	@$(DEV) --env-file .env.example build

up: setup env ## Dev stack: build, start, wait until healthy (prints the failure when not)
	@scripts/up.sh dev --env-file .env
	@echo "sidecar: curl -s http://127.0.0.1:$(SIDECAR_PORT)/health"

down: ## Stop the dev stack (keeps the data volumes)
	@$(DEV) down

ps: ## Show the dev stack's services
	@$(DEV) ps -a

logs: ## Follow the dev stack's logs
	@$(DEV) logs -f --tail 100

health: ## curl the sidecar's /health
	@curl -sS -w '\nHTTP %{http_code}\n' "http://127.0.0.1:$(SIDECAR_PORT)/health"

migrate: ## Run the migration job again (direct URL)
	@$(DEV) run --rm migrate

# The password travels in the environment (exec -e NAME takes it from there): quotes and other
# special characters in it need no escaping, and it is not on a command line.
psql: ## psql through PgBouncer as the app role
	@PGPASSWORD="$(call env_get,APP_PASSWORD)" $(DEV) exec -e PGPASSWORD pgbouncer \
	  psql -h 127.0.0.1 -p 6432 -U "$(call env_get,APP_USER)" "$(call env_get,APP_DB)"

psql-direct: ## psql straight to Postgres as the app role
	@PGPASSWORD="$(call env_get,APP_PASSWORD)" $(DEV) exec -e PGPASSWORD postgres \
	  psql -h 127.0.0.1 -p 5432 -U "$(call env_get,APP_USER)" "$(call env_get,APP_DB)"

pgbouncer-admin: ## PgBouncer admin console: SHOW POOLS (ARGS='-c "SHOW STATS"' for others)
	@$(DEV) exec -T pgbouncer pgbouncer-admin $(if $(ARGS),$(ARGS),-c 'SHOW POOLS')

prod-secrets: ## Generate ./secrets/* for the prod stack (keeps existing ones)
	@scripts/gen-secrets.sh

prod-up: setup prod-secrets ## Prod stack: build, start, wait until healthy
	@scripts/up.sh prod

prod-down: ## Stop the prod stack (keeps the data volumes)
	@$(PROD) down

prod-ps: ## Show the prod stack's services
	@$(PROD) ps -a

test: setup ## The test suite (what CI runs): the unit, e2e and fault tiers, one after another
	@scripts/test.sh all

test-unit: ## The fast tier: unit and process tests (no Docker needed)
	@scripts/test.sh unit

test-e2e: setup ## End-to-end tests only (builds the images, drives the compose files)
	@scripts/test.sh e2e

test-fault: setup ## The slow tier: load, faults, bad input, security; writes docs/reliability.md
	@scripts/test.sh fault

bench: setup env ## Benchmarks against the dev stack; writes docs/benchmarks.md (BENCH_SECONDS=20)
	@scripts/bench.sh

lint: ## Type-check the sidecar, syntax-check the scripts, validate both compose files
	@scripts/lint.sh

clean: ## Remove dev and prod stacks with their volumes, test leftovers and build outputs
	@-$(DEV) --env-file .env.example down -v --remove-orphans
	@-POOLGUARD_SECRETS_DIR=$${POOLGUARD_SECRETS_DIR:-./secrets} $(PROD) --env-file .env.example down -v --remove-orphans 2>/dev/null || true
	@scripts/cleanup-test-stacks.sh
	@rm -rf sidecar/dist
