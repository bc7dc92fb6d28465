# Trainyard developer entry points. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

UV_VERSION := 0.13.9
# uv lands in ~/.local/bin when we install it ourselves.
export PATH := $(HOME)/.local/bin:$(PATH)
UV := $(shell command -v uv 2>/dev/null || echo $(HOME)/.local/bin/uv)
TRAINERS := $(notdir $(wildcard trainers/*))
PYTEST_WORKERS ?= 2

.PHONY: help install trainers demo dev test test-platform test-trainers lint bench histories kind-up clean

help: ## Show this help
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2}'

$(UV):
	@echo "uv not found: installing uv $(UV_VERSION) for this user (python3 -m pip install --user)"
	python3 -m pip install --user --quiet "uv==$(UV_VERSION)"

install: $(UV) ## Install the platform, workflows, temporal CLI and every trainer from the lockfiles
	$(UV) sync --locked
	@$(MAKE) --no-print-directory trainers

trainers: $(UV) ## Install each trainer's own locked environment (trainers/<name>/.venv)
	@for t in $(TRAINERS); do echo "trainer $$t: uv sync --locked"; (cd trainers/$$t && $(UV) sync --locked --quiet) || exit 1; done

demo: install ## THE MAIN JOB: start the embedded platform and train yolo11n on synthetic shapes, live
	$(UV) run --frozen trainyard demo

dev: install ## Run the embedded platform in the foreground (Ctrl-C stops it)
	$(UV) run --frozen trainyard up

kind-up: ## Local Kubernetes: kind cluster, images, dependencies, the Helm chart (needs docker, kind, kubectl, helm)
	bash charts/kind/up.sh

test: install lint test-trainers test-platform ## Everything CI runs: lint, trainer tests, platform tests

test-platform: $(UV)
	$(UV) run --frozen pytest -n $(PYTEST_WORKERS) --dist loadgroup

test-trainers: $(UV)
	@for t in $(TRAINERS); do echo "trainer $$t: tests"; (cd trainers/$$t && $(UV) run --frozen pytest -q) || exit 1; done

lint: $(UV) ## ruff + mypy (strict) over the platform, workflows and trainers
	$(UV) run --frozen ruff check .
	$(UV) run --frozen ruff format --check .
	$(UV) run --frozen mypy platform/backend
	$(UV) run --frozen mypy workflows
	@for t in $(TRAINERS); do (cd trainers/$$t && $(UV) run --frozen ruff check . && $(UV) run --frozen ruff format --check . && $(UV) run --frozen mypy .) || exit 1; done

bench: install ## Print benchmark figures (platform overhead, callback ingest, event relay)
	$(UV) run --frozen python platform/backend/bench/platform_overhead.py
	cd platform/backend && $(UV) run --frozen python -m bench.live_paths all

histories: install ## Re-record the workflow histories the replay tests check (only with Temporal versioning!)
	$(UV) run --frozen python platform/backend/tools/capture_histories.py

clean: ## Remove local state (.trainyard/) and build caches
	rm -rf .trainyard .pytest_cache .mypy_cache .ruff_cache
