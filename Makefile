# idbroker: `make run` for the embedded demo, `make test` for the whole suite. Everything else is optional.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
HOST   ?= localhost
PORT   ?= 8000
VENDOR ?= dev

# Services used by the second test pass and by run-prod-like (this machine kind runs both already).
PG_URL    ?= postgres://postgres@127.0.0.1:5432/idbroker
REDIS_URL ?= redis://127.0.0.1:6379/15

.PHONY: bench run test test-unit test-services install install-dev system-deps lint run-prod-like prod-env clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.runtime: requirements.txt | $(BIN)/python
	$(BIN)/pip install -q -r requirements.txt
	touch $@

$(VENV)/.dev: requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/pip install -q -r requirements-dev.txt
	touch $(VENV)/.runtime $@

install: $(VENV)/.runtime
install-dev: $(VENV)/.dev

# Debian packages the browser tests need: Chromium (driven by Playwright, never downloaded) and ffmpeg (fake camera).
system-deps:
	@missing=""; command -v chromium >/dev/null || missing="$$missing chromium"; \
	command -v ffmpeg >/dev/null || missing="$$missing ffmpeg"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	  else echo "Please install:$$missing (sudo apt-get install$$missing)"; exit 1; fi; \
	fi

# VENDOR=persona|onfido|stripe_identity|veriff runs the broker against that vendor's local fake (fakevendors/),
# started alongside on ports 8101-8104; the default is the built-in dev vendor.
# `runserver` with no Celery broker also runs the beat schedule in-process (broker/scheduler.py): the evidence
# sweeper, vendor-deletion polls, webhook retries and tree heads keep their deadlines under `make run` too.
run: install
	DEBUG=true $(BIN)/python manage.py setup
	DEBUG=true IDBROKER_PUBLIC_URL=http://$(HOST):$(PORT) $(BIN)/python manage.py load_demo
	@echo ""
	@echo "  idbroker demo: open http://$(HOST):$(PORT)/  (admin: DEBUG=true .venv/bin/python manage.py createsuperuser)"
	@echo ""
	@if [ "$(VENDOR)" = dev ]; then \
	  DEBUG=true IDBROKER_PUBLIC_URL=http://$(HOST):$(PORT) $(BIN)/python manage.py runserver $(HOST):$(PORT); \
	else \
	  rm -f var/fakevendors.env; \
	  $(BIN)/python -m fakevendors --broker http://$(HOST):$(PORT) --env-file var/fakevendors.env & fakes=$$!; \
	  trap "kill $$fakes 2>/dev/null" EXIT INT TERM; \
	  while [ ! -s var/fakevendors.env ]; do sleep 0.2; done; \
	  set -a; . ./var/fakevendors.env; set +a; \
	  DEBUG=true IDBROKER_VENDOR=$(VENDOR) IDBROKER_PUBLIC_URL=http://$(HOST):$(PORT) \
	    $(BIN)/python manage.py runserver $(HOST):$(PORT); \
	fi

# Pass 1: the embedded default (SQLite, eager tasks) incl. the browser tests.
# Pass 2: the same product on PostgreSQL with a real Celery worker and Redis (tests marked `services`).
test: install-dev system-deps
	$(BIN)/pytest
	$(MAKE) --no-print-directory test-services

test-unit: install-dev
	$(BIN)/pytest -m "not services and not e2e"

test-services: install-dev
	DATABASE_URL=$(PG_URL) CELERY_BROKER_URL=$(REDIS_URL) $(BIN)/pytest -m services

lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# Production topology on this machine: gunicorn + Celery worker + beat against PostgreSQL and Redis.
prod-env:
	@test -f var/prod.env || { mkdir -p var && { \
	  echo "DATABASE_URL=$(PG_URL)"; echo "CELERY_BROKER_URL=$(REDIS_URL)"; echo "CACHE_URL=rediscache://127.0.0.1:6379/14"; \
	  echo "SECRET_KEY=$$(openssl rand -base64 48 | tr -d '\n')"; \
	  echo "IDBROKER_MASTER_KEY=$$(openssl rand -base64 32)"; echo "IDBROKER_HASH_KEY=$$(openssl rand -base64 32)"; \
	  echo "IDBROKER_DEV_VENDOR_WEBHOOK_SECRET=$$(openssl rand -hex 24)"; \
	  echo "IDBROKER_PUBLIC_URL=http://$(HOST):$(PORT)"; echo "ALLOWED_HOSTS=$(HOST),localhost"; \
	  echo "SECURE_SSL_REDIRECT=false"; echo "SESSION_COOKIE_SECURE=false"; echo "CSRF_COOKIE_SECURE=false"; \
	  echo "IDBROKER_DEMO=true"; echo "IDBROKER_ALLOW_DEV_VENDOR=true"; echo "DEBUG=false"; } > var/prod.env; chmod 600 var/prod.env; echo "wrote var/prod.env"; }

run-prod-like: install prod-env
	@psql -h 127.0.0.1 -U postgres -tc "SELECT 1 FROM pg_database WHERE datname='idbroker'" | grep -q 1 || \
	  psql -h 127.0.0.1 -U postgres -c "CREATE DATABASE idbroker"
	set -a && . var/prod.env && set +a && $(BIN)/python manage.py setup && \
	  $(BIN)/python manage.py collectstatic --noinput -v0 && $(BIN)/python manage.py load_demo && \
	  $(BIN)/python manage.py check --deploy --fail-level ERROR && \
	  { $(BIN)/celery -A broker worker -l info --concurrency 2 & $(BIN)/celery -A broker beat -l info -s var/celerybeat-schedule & \
	    $(BIN)/gunicorn broker.wsgi -b $(HOST):$(PORT) -w 2 ; kill %1 %2; }

clean:
	rm -rf $(VENV) var staticfiles .pytest_cache

bench: install
	@command -v wrk >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk; }
	$(BIN)/python bench/run.py
