# One entry point for every check. `make test` is what CI runs (.ci/run).
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
SAM_VENV := .tools/sam
SAM := $(SAM_VENV)/bin/sam
export AWS_DEFAULT_REGION ?= us-east-1
export SAM_CLI_TELEMETRY := 0

.PHONY: help venv lint typecheck unit sam-validate sam-build test bench emails clean

help: ## List the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

$(BIN)/activate: requirements-dev.txt layers/shared/requirements.txt
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@

$(SAM): requirements-sam.txt
	test -d $(SAM_VENV) || $(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/pip install --quiet --upgrade pip
	$(SAM_VENV)/bin/pip install --quiet -r requirements-sam.txt
	touch $@

venv: $(BIN)/activate ## Create .venv with everything the code and the checks need

lint: venv ## ruff and mypy
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	@# Every function's handler is called app.py, so each is type-checked on its own.
	@for fn in functions/*/; do $(BIN)/mypy $$fn/app.py || exit 1; done

unit: venv ## pytest (everything but the long fuzz run)
	$(BIN)/pytest -m "not fuzz"

sam-validate: $(SAM) ## sam validate --lint
	$(SAM) validate --lint

sam-build: $(SAM) ## sam build (the shared layer's dependencies for arm64)
	$(SAM) build --parallel

test: lint unit sam-validate sam-build ## Every check a change needs

bench: venv ## Performance figures, as ratios measured side by side
	$(BIN)/python -m bench

emails: venv ## Render every cause's emails to out/emails/<cause>-<kind>.html|.txt
	PYTHONPATH=layers/shared:. $(BIN)/python -m local_stack.emails

clean: ## Remove build output and generated files
	rm -rf .aws-sam out .pytest_cache .mypy_cache .ruff_cache
