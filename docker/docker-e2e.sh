#!/usr/bin/env bash
# The real Docker test (`make test-docker`, run by CI): start an engine if none runs (installing
# Debian's docker.io and docker-compose if needed), build the local base image if
# python:3.11-slim cannot be pulled, build every image, then run tests/docker with pytest
# (AGENTORCH_DOCKER_TEST=1): the stack up, tasks from the host and from the interactive
# container, the gateway's /health and /providers, one agent stopped, the production override;
# each stack is torn down, also on failure. Prints how long each phase took. Runs `make setup`
# first when .venv (pytest) is missing, e.g. after `make clean`.
#
# usage: docker/docker-e2e.sh [--help] [pytest args ...]
set -euo pipefail
source "$(dirname "$0")/lib.sh"
wants_help "${1:-}"
cd "$REPO_ROOT"
total=$SECONDS
phases=()
phase() { phases+=("$(printf '%5d s  %s' "$((SECONDS - $1))" "$2")"); }
report() {
  echo "== docker phases"
  printf '%s\n' "${phases[@]}" "$(printf '%5d s  total' "$((SECONDS - total))")"
}
trap report EXIT

if ! "$REPO_ROOT/.venv/bin/python" -c 'import pytest' >/dev/null 2>&1; then
  t=$SECONDS; note "no .venv with pytest: make setup"; make -C "$REPO_ROOT" setup; phase "$t" "make setup"
fi
t=$SECONDS; "$REPO_ROOT/docker/docker-engine.sh"; phase "$t" "engine"
t=$SECONDS; BASE_IMAGE="$("$REPO_ROOT/docker/base-image.sh")"; export BASE_IMAGE; phase "$t" "base image ($BASE_IMAGE)"
t=$SECONDS; "$REPO_ROOT/docker/docker-build.sh"; phase "$t" "images"
t=$SECONDS
AGENTORCH_DOCKER_TEST=1 "$REPO_ROOT/.venv/bin/python" -m pytest tests/docker -q -x "$@"
phase "$t" "tests (stacks up, tasks, degrade, prod, down)"
