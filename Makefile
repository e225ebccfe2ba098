# poolguard — `make` or `make help` lists every target.
SHELL := /usr/bin/env bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

COMPOSE      := scripts/compose.sh
# The dev stack reads ENV_FILE (.env), the prod stack PROD_ENV (prod.env) and nothing else.
ENV_FILE     ?= .env
PROD_ENV     ?= prod.env
DEV          := $(COMPOSE) -f docker-compose.dev.yml --env-file $(ENV_FILE)
PROD         := $(COMPOSE) -f docker-compose.prod.yml --env-file $(PROD_ENV)
env_get       = $$(source scripts/lib.sh && env_get $(ENV_FILE) $(1))
prod_get      = $$(source scripts/lib.sh && env_get $(PROD_ENV) $(1))

.PHONY: help setup env build up down ps logs health urls passwords plan migrate psql psql-direct pgbouncer-admin \
        backup backups restore restore-check backup-bench prod-secrets prod-up prod-down prod-ps prod-logs rotate test test-unit test-e2e test-fault reliability bench lint clean

help: ## List every target
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_-]+:.*## / {printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

setup: ## Install/start the Docker engine, Compose v2 and the base image when missing (idempotent)
	@scripts/ensure-docker.sh
	@scripts/prepare-build.sh

env: ## Create .env when missing (random dev passwords, a project name of this checkout's own)
	@scripts/ensure-env.sh $(ENV_FILE)

build: setup env ## Build every dev image (postgres, pgbouncer, redis, migrate, sidecar)
	@$(DEV) build

up: setup env ## Dev stack: check, build, start; exit 0 only when /health is 200 (says why not)
	@scripts/up.sh dev --env-file $(ENV_FILE)
	@echo "status page: http://127.0.0.1:$$(p=$(call env_get,PUBLISH_SIDECAR_PORT); echo $${p:-8787})/   health: curl -s http://127.0.0.1:$$(p=$(call env_get,PUBLISH_SIDECAR_PORT); echo $${p:-8787})/health   app URLs: make urls"

down: ## Stop the dev stack (keeps the data volumes)
	@$(DEV) down

ps: ## Show the dev stack's services
	@$(DEV) ps -a

logs: ## Follow the dev stack's logs
	@$(DEV) logs -f --tail 100

health: ## curl the dev sidecar's /health
	@curl -sS -w '\nHTTP %{http_code}\n' "http://127.0.0.1:$$(p=$(call env_get,PUBLISH_SIDECAR_PORT); echo $${p:-8787})/health"

urls: env ## Print DATABASE_URL, DATABASE_URL_DIRECT and REDIS_URL for an app on this host (from .env)
	@scripts/urls.sh $(ENV_FILE)

passwords: ## Set the dev roles' passwords in Postgres to those in .env (after editing them)
	@scripts/passwords.sh --env-file $(ENV_FILE)

plan: ## Connection budget: the running stack's, or before a deploy: APP_INSTANCES=6 APP_POOL=10 PGBOUNCER_DEFAULT_POOL_SIZE=40 (PLAN_MODE=rendered)
	@scripts/plan.sh $(ENV_FILE)

migrate: ## Run the migration job again (direct URL; sees new files in migrations/sql)
	@$(DEV) run --rm --build migrate

# The password travels in the environment (exec -e NAME takes it from there): quotes and other
# special characters in it need no escaping, and it is not on a command line.
psql: ## psql through PgBouncer as the app role (ARGS='-c "select 1"' for a command)
	@PGPASSWORD="$(call env_get,APP_PASSWORD)" $(DEV) exec $(if $(ARGS),-T) -e PGPASSWORD pgbouncer \
	  psql -h 127.0.0.1 -p 6432 -U "$(call env_get,APP_USER)" -d "$(call env_get,APP_DB)" $(ARGS)

psql-direct: ## psql straight to Postgres as the app role (ARGS= as for psql)
	@PGPASSWORD="$(call env_get,APP_PASSWORD)" $(DEV) exec $(if $(ARGS),-T) -e PGPASSWORD postgres \
	  psql -h 127.0.0.1 -p 5432 -U "$(call env_get,APP_USER)" -d "$(call env_get,APP_DB)" $(ARGS)

pgbouncer-admin: ## PgBouncer admin console: SHOW POOLS (ARGS='-c "SHOW STATS"' for others)
	@$(DEV) exec -T pgbouncer pgbouncer-admin $(if $(ARGS),$(ARGS),-c 'SHOW POOLS')

# Backups: the dev stack, or the prod one with STACK=prod (scripts/backup.sh; docs/backups.md).
STACK        ?= dev
BACKUP       := scripts/backup.sh $(STACK)
BACKUP_ENV    = -- --env-file $(if $(filter prod,$(STACK)),$(PROD_ENV),$(ENV_FILE))
backup: ## Take a backup now: TYPE=full (default), diff or incr; STACK=prod for the prod stack
	@$(BACKUP) backup $(or $(TYPE),full) $(BACKUP_ENV)

backups: ## What the backup repository holds (each backup, sizes, WAL range) and the schedule's last run
	@$(BACKUP) backups $(BACKUP_ENV)

restore: ## Restore Postgres (stopped first): latest, TARGET_TIME='2026-12-02 14:05:00+00' or TARGET_LSN=0/3000060; CONFIRM=yes
	@$(BACKUP) restore $(if $(TARGET_TIME),--time "$(TARGET_TIME)") $(if $(TARGET_LSN),--lsn "$(TARGET_LSN)") $(if $(filter yes,$(CONFIRM)),--yes) $(BACKUP_ENV)

backup-bench: ## Backup timings on the dev stack (manual, minutes): SCALE=65 (~1 GB) full backup, restore-check, archive lag under pgbench
	@scripts/backup-bench.sh --scale $(or $(SCALE),65) --seconds $(or $(SECONDS_UNDER_LOAD),60) -- --env-file $(ENV_FILE)

restore-check: ## Restore the latest backup into a scratch container, amcheck + row counts, report, discard
	@$(BACKUP) restore-check $(BACKUP_ENV)

prod-secrets: ## Generate the prod secret files in POOLGUARD_SECRETS_DIR of prod.env (keeps existing ones)
	@scripts/gen-secrets.sh "$$(d=$(call prod_get,POOLGUARD_SECRETS_DIR); echo $${d:-./secrets})"

prod-up: setup prod-secrets ## Prod stack from prod.env: check, build, start; exit 0 only when /health is 200
	@scripts/up.sh prod --env-file $(PROD_ENV)

prod-down: ## Stop the prod stack (keeps the data volumes; nothing here deletes prod data)
	@$(PROD) down

prod-ps: ## Show the prod stack's services
	@$(PROD) ps -a

prod-logs: ## Follow the prod stack's logs
	@$(PROD) logs -f --tail 100

rotate: ## Rotate a prod secret in a safe order: SECRET=app_password (or all); see scripts/rotate.sh
	@test -n "$(SECRET)" || { echo "make rotate SECRET=<name>|all (scripts/rotate.sh --help lists them)" >&2; exit 2; }
	@scripts/rotate.sh --env-file $(PROD_ENV) $(SECRET)

test: setup ## The test suite (what CI runs): the unit, e2e and fault tiers, one after another
	@scripts/test.sh all

test-unit: ## The fast tier: unit and process tests (no Docker needed)
	@scripts/test.sh unit

test-e2e: setup ## End-to-end tests only (builds the images, drives the compose files)
	@scripts/test.sh e2e

test-fault: setup ## The slow tier: load, faults, bad input, security (rows in sidecar/.reliability/)
	@scripts/test.sh fault

reliability: setup ## Run the fault tier; only if every test passed, rewrite docs/reliability.md from that run
	@status=0; scripts/test.sh fault --reporter=default --reporter=json --outputFile.json=.reliability/results.json || status=$$?; \
	  node scripts/reliability-report.mjs --dir sidecar/.reliability --out docs/reliability.md; exit $$status

bench: setup env ## Benchmarks (about 70 min): 5 interleaved pairs per configuration; docs/benchmarks.md. BENCH_QUICK=1: the smoke
	@scripts/bench.sh

lint: ## Type-check the sidecar, syntax-check the scripts, validate both compose files
	@scripts/lint.sh

clean: ## Delete THIS checkout's dev stack and its data (names the volumes, asks; CONFIRM=yes); never prod
	@scripts/clean.sh $(if $(filter yes,$(CONFIRM)),--yes) --env-file $(ENV_FILE)
