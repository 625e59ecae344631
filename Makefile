# One command per job. `make setup` first; every target works from a fresh clone with Python 3.11.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
PORT   ?= 8585
SRC    := functions shared emulator tests bench

.PHONY: setup lock requirements manifest package test test-deploy test-chaos lint fmt gateway demo up down bench bench-gateway clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# uv installs the locked set several times faster than pip (bench/RESULTS.md, "Figures quoted in
# the code"); pip is the fallback, so only Python and PyPI are needed either way.
# Both write the bytecode of what they install, as pip does by default: without it, every process
# compiles its imports again (where PYTHONDONTWRITEBYTECODE is set, always), which costs each
# function ~1 s of start-up and the test suite a third of its time (bench/RESULTS.md, "Test suite
# wall time").
setup: $(BIN)/uv ## create .venv and install the project with its dev extra, at the locked versions
	$(BIN)/uv pip install --quiet --compile-bytecode --python $(BIN)/python -c constraints.txt -e '.[dev]' || \
		$(BIN)/python -m pip install --quiet --compile -c constraints.txt -e '.[dev]'

$(BIN)/uv: $(BIN)/python
	$(BIN)/python -m pip install --quiet 'uv>=0.5,<1'

lock: $(BIN)/uv ## re-resolve constraints.txt to the newest versions pyproject.toml allows, then requirements
	$(BIN)/python -m tools.requirements --lock

requirements: $(BIN)/uv ## write each function's requirements.txt from pyproject.toml and constraints.txt
	$(BIN)/python -m tools.requirements

manifest: ## write the Dockerfile's stages, the compose files' agent parts from functions.yaml
	$(BIN)/python -m emulator.cli manifest

package: ## each function's source bundle for Cloud Functions / Cloud Run: dist/functions/NAME/, dist/NAME.zip
	$(BIN)/python -m emulator.cli package

# The suite mostly waits on sockets and child processes, so more workers than cores pays
# (bench/RESULTS.md, "Test suite wall time"). loadfile keeps a module on one worker, so its
# module-scoped servers and processes start once (loadgroup's groups are lost on pytest 9).
TEST_WORKERS ?= 4
# The project's own modules are compiled first, as setup compiles what it installs: the suite
# starts a hundred function processes, each of which compiled them again where
# PYTHONDONTWRITEBYTECODE is set. The test modules' asserts are rewritten once, as pytest would,
# not by each worker (tools/rewrite_tests.py); pytest may keep what it rewrites, so a second run
# does not rewrite again (both in __pycache__, git-ignored).
test: ## run the test suite in parallel (TEST_WORKERS=4; pytest's own flags for one file)
	$(BIN)/python -m compileall -q -j0 functions shared emulator tools >/dev/null
	$(BIN)/python -m tools.rewrite_tests tests
	PYTHONDONTWRITEBYTECODE= $(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder

# Builds virtual environments, so it is not part of `make test` (tests/deploy/conftest.py).
test-deploy: ## each bundle in a fresh venv from its requirements.txt alone (server and Lambda handler), then all on one task
	AGENTORCH_DEPLOY_TEST=1 $(BIN)/python -m pytest tests/deploy

# Starts and SIGKILLs real processes for ~15 s, so it is not part of `make test` (tests/chaos/).
test-chaos: ## issue 21's chaos proof, small: 10 runs on 3 orchestrators killed as they go, no duplicates
	AGENTORCH_CHAOS_TEST=1 $(BIN)/python -m pytest tests/chaos

lint: ## ruff and mypy
	$(BIN)/ruff check $(SRC)
	$(BIN)/ruff format --check $(SRC)
	$(BIN)/mypy $(SRC)

fmt: ## format and fix what ruff can
	$(BIN)/ruff format $(SRC)
	$(BIN)/ruff check --fix $(SRC)

gateway: ## run the model gateway on $(PORT) with the production server
	PORT=$(PORT) WORKERS=$${WORKERS:-2} \
		$(BIN)/functions-framework --source functions/gateway/main.py --target gateway

demo: ## the main job: the whole stack on the emulator (offline), three tasks with their steps, stop
	@test -x $(BIN)/agentorch || $(MAKE) setup
	$(BIN)/python -m emulator.demo

UP_FLAGS ?=
up: ## start the stack on the emulator in the background (gateway :8585, orchestrator :8080; UP_FLAGS=--any-port)
	@test -x $(BIN)/agentorch || $(MAKE) setup
	$(BIN)/agentorch up -d $(UP_FLAGS)

down: ## stop the emulated stack; no process is left behind
	$(BIN)/agentorch down

bench: bench-gateway bench-inflight bench-openai bench-tracing bench-orchestrator bench-stack bench-cold bench-mcp bench-sessions bench-first-token

LITELLM := bench/.work/litellm/bin/litellm

bench-gateway: ## gateway vs LiteLLM proxy (same fake upstream, same wrk load); writes bench/RESULTS.md
	@command -v wrk >/dev/null && command -v nginx >/dev/null || \
		(apt-get update -qq && apt-get install -y -qq wrk nginx-light)
	@test -x $(LITELLM) || ($(PYTHON) -m venv bench/.work/litellm && \
		bench/.work/litellm/bin/pip install --quiet 'litellm[proxy]==1.108.7')
	$(BIN)/python -m bench.gateway

.PHONY: bench-inflight
bench-inflight: bench-tools ## calls in flight: 256 and 1,000 clients on a 1 s upstream, 1,000 streams
	$(BIN)/python -m bench.inflight

.PHONY: bench-openai
bench-openai: bench-tools ## /v1/chat/completions and /v1/responses beside /v1/messages: added latency, 1,000 in flight
	$(BIN)/python -m bench.openai_chat

.PHONY: bench-tracing
bench-tracing: bench-tools ## tracing off beside on (OTLP export): the gateway's added latency and throughput
	$(BIN)/python -m bench.tracing

.PHONY: bench-stack
bench-stack: ## the full offline stack on the emulator: tasks/s and latency at 1, 10, 100 at once
	$(BIN)/python -m bench.stack

.PHONY: bench-tools
bench-tools:
	@command -v wrk >/dev/null && command -v nginx >/dev/null || \
		(apt-get update -qq && apt-get install -y -qq wrk nginx-light)

.PHONY: bench-chaos
bench-chaos: ## issue 21's chaos proof: 100 runs, 3 orchestrators on Redis, one SIGKILLed every 2.5 s
	$(BIN)/python -m bench.chaos

.PHONY: bench-sessions
bench-sessions: ## sessions on Redis: added p50 per task, and 1,000 tasks at once on 1,000 sessions
	@command -v redis-server >/dev/null || (apt-get update -qq && apt-get install -y -qq redis-server)
	$(BIN)/python -m bench.sessions

.PHONY: bench-first-token
bench-first-token: ## a streamed run's first words: through the orchestrator against the gateway alone
	$(BIN)/python -m bench.first_token

.PHONY: bench-cold
bench-cold: ## every function's cold start: process start to first answer, with and without bytecode, beside functions-framework's command
	$(BIN)/python -m bench.cold_start --functions-framework

.PHONY: bench-mcp
bench-mcp: ## an agent's MCP tools/call beside its plain POST /, and 1,000 MCP calls at once
	$(BIN)/python -m bench.mcp

.PHONY: bench-orchestrator
bench-orchestrator: ## orchestrator overhead per step and 1,000 concurrent tasks; writes bench/RESULTS.md
	$(BIN)/python -m bench.orchestrator

# ---- Docker (docker/*.sh; `docker/<script> --help` says what each does) ----------------------
.PHONY: build start stop restart health logs logs-gateway logs-orchestrator stats docker-clean validate test-docker
COMPOSE_V := $(shell docker compose version >/dev/null 2>&1 && echo "docker compose" || echo docker-compose)

build: ## build every image, tagged $TAG (environment or .env; a local base image where python:3.11-slim cannot be pulled)
	docker/docker-build.sh

start: ## start the stack in containers and wait until healthy (PROD=1: production overrides)
	docker/docker-start.sh

stop: ## stop the containers
	docker/docker-stop.sh

restart: stop start

health: ## each container's health
	docker/docker-health.sh

logs: ## follow every container's logs
	$(COMPOSE_V) logs -f --tail 100

logs-gateway:
	$(COMPOSE_V) logs -f --tail 100 model-gateway

logs-orchestrator:
	$(COMPOSE_V) logs -f --tail 100 orchestrator

stats: ## CPU and memory of each container
	docker stats --no-stream $$($(COMPOSE_V) ps -q)

docker-clean: ## remove the stack, its volumes and its images, every tag (BASE=1: the base image too)
	BASE=$(BASE) docker/docker-clean.sh

validate: ## check Docker, Compose, files, .env, scripts, ports and the compose files
	docker/docker-validate.sh

test-docker: ## the real Docker test: engine, base image, images, stacks, tasks, teardown (makes .venv if missing)
	docker/docker-e2e.sh

# Smoke tests against the stack started with the `test` profile (fakes instead of providers),
# run in the interactive image on the stack's network (docker/docker-smoke.sh):
#   make start-test test-gateway test-retry test-fallback stop
.PHONY: start-test test-gateway test-retry test-fallback
start-test: ## the stack with the fake Anthropic API and moto's Bedrock (no keys, no internet)
	COMPOSE_PROFILES=test COMPOSE_ENV_FILE=docker/test.env docker/docker-start.sh

test-gateway: ## a message answered by the fake Anthropic API through the gateway
	docker/docker-smoke.sh gateway

test-retry: ## the fake answers 529 then 200: x-gateway-attempts is 2
	docker/docker-smoke.sh retry

test-fallback: ## the fake answers 529 always: Bedrock through moto answers
	docker/docker-smoke.sh fallback

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
