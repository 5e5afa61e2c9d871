# Two commands on a fresh machine (Python 3.11+):
#   make demo   installs everything into .venv and runs the main job end to end, embedded:
#               every enabled use case, in one run with one notification
#   make test   installs everything into .venv and runs the whole test suite
#               (make test-fast: the same without the Spark and end-to-end tests)
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-dev
# Each use case runs over its own range (usecase.<name>.start/end in config/local.toml);
# START=YYYY-MM-DD (and END=...) override it for every use case.
RANGE  := $(if $(START),--start $(START)) $(if $(END),--end $(END))

.PHONY: demo demo-monitor test test-fast lint bench java clean-var api-package deploy deploy-plan checkov openapi-client

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ is required"'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	@touch $(STAMP)

java:
	@scripts/ensure-java.sh

# checkov (the stack's security checks, tests/infrastructure) pins boto3, networkx and packaging
# below what .venv needs, so it gets a virtual environment of its own; the test runs it there.
CHECKOV_VENV  := .venv-checkov
CHECKOV_STAMP := $(CHECKOV_VENV)/.installed
CHECKOV_SPEC  := checkov==3.3.30

$(CHECKOV_STAMP): Makefile
	@test -x $(CHECKOV_VENV)/bin/python || $(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(CHECKOV_VENV)/bin/python -m pip install --quiet "$(CHECKOV_SPEC)"
	@touch $(CHECKOV_STAMP)

checkov: $(CHECKOV_STAMP)

# openapi-python-client (tests/api/test_generated_client.py generates a client from the API's
# document with it) pins typer below what .venv's CLI uses: an environment of its own, too.
OPENAPI_CLIENT_VENV  := .venv-openapi-client
OPENAPI_CLIENT_STAMP := $(OPENAPI_CLIENT_VENV)/.installed
OPENAPI_CLIENT_SPEC  := openapi-python-client==0.29.1

$(OPENAPI_CLIENT_STAMP): Makefile
	@test -x $(OPENAPI_CLIENT_VENV)/bin/python || $(PYTHON) -m venv $(OPENAPI_CLIENT_VENV)
	$(OPENAPI_CLIENT_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(OPENAPI_CLIENT_VENV)/bin/python -m pip install --quiet "$(OPENAPI_CLIENT_SPEC)"
	@touch $(OPENAPI_CLIENT_STAMP)

openapi-client: $(OPENAPI_CLIENT_STAMP)

demo: $(STAMP) java
	$(BIN)/headwater demo-data
	$(BIN)/headwater run $(RANGE)

# After `make demo`: the months after each served model's training window (its holdout, never
# trained on) sent through the running API as clients send them, one month as it was and one
# with a documented shift, then the normal run ingests and monitors them (docs/monitoring.md,
# "The demo"). The server is stopped with SIGTERM (capture flushed) however the replays end.
MONITOR_PORT ?= 8000
REPLAY := $(BIN)/headwater replay --url http://127.0.0.1:$(MONITOR_PORT) --wait 60

demo-monitor: $(STAMP)
	@mkdir -p var/logs
	@$(BIN)/headwater serve --port $(MONITOR_PORT) > var/logs/demo-monitor-serve.log 2>&1 & \
	server=$$!; trap 'kill -TERM $$server 2>/dev/null; wait $$server' EXIT; \
	$(REPLAY) --usecase flights --start 2013-11-01 --end 2013-11-30 && \
	$(REPLAY) --usecase flights --start 2013-12-01 --end 2013-12-31 --shift celsius-as-fahrenheit && \
	$(REPLAY) --usecase bikeshare --start 2012-11-01 --end 2012-11-30 && \
	$(REPLAY) --usecase bikeshare --start 2012-12-01 --end 2012-12-31 --shift humidity-as-fraction
	$(BIN)/headwater run

# Extra pytest options for both test targets, e.g. PYTEST_ARGS='-n 2 --dist loadgroup' (xdist
# on two workers; loadgroup keeps every spark test on one worker, one SparkSession).
PYTEST_ARGS ?=

# The 25 slowest tests are listed at the end: where the suite's time goes, run by run.
test: $(STAMP) java $(CHECKOV_STAMP) $(OPENAPI_CLIENT_STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest --durations=25 $(PYTEST_ARGS)

# The fast lane while working: no Spark and no end-to-end runs (pipeline runs, subprocess
# servers, venv builds; markers in pyproject.toml, applied in tests/conftest.py). CI runs `test`.
test-fast: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -m "not spark and not slow" $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check headwater functions luigi_tasks cli

bench: $(STAMP)
	$(BIN)/python bench/backfill.py

clean-var:
	rm -rf var

# The stage of api-package, deploy-plan and deploy; DEPLOY_ARGS adds headwater deploy options,
# e.g. DEPLOY_ARGS='--image-repository <ECR prefix> --parameter AlertEmail=ops@example.com'.
STAGE ?= prod

# The API's Lambda package, built in .venv-lambda with the Lambda runtime's Python
# (zappa_settings.json's runtime); fails naming the interpreter if it is missing. Zappa's zip
# callback (cli/zappa_guard.py) adds that Python's bytecode of every module it ships.
api-package: $(STAMP)
	$(BIN)/headwater deploy --stage $(STAGE) --dry-run --only api-package

# Everything that needs no AWS account (images if Docker runs, package, cfn-lint); prints the plan.
deploy-plan: $(STAMP)
	$(BIN)/headwater deploy --stage $(STAGE) --dry-run $(DEPLOY_ARGS)

deploy: $(STAMP)
	$(BIN)/headwater deploy --stage $(STAGE) $(DEPLOY_ARGS)
