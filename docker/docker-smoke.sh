#!/usr/bin/env bash
# Run one smoke check of docker/smoke.py inside the interactive image, on the stack's network,
# against a stack started with the `test` profile (make start-test): the check reaches the
# gateway and the fake Anthropic API by their service names, as the orchestrator does.
#   gateway   a message through the gateway is answered by the fake Anthropic API
#   retry     the fake answers 529, then 200: x-gateway-attempts is 2
#   fallback  the fake answers 529 every time: Bedrock (moto) answers
# Builds the interactive image first if it is missing. Exit 1 with the reason on a failure.
#
# usage: docker/docker-smoke.sh [--help] gateway|retry|fallback
set -euo pipefail
source "$(dirname "$0")/lib.sh"
wants_help "${1:-}"
case "${1:-}" in
  gateway | retry | fallback) ;;
  *) die "which check? gateway, retry or fallback (docker/docker-smoke.sh --help)" ;;
esac
require_docker
docker image inspect "agentorch/interactive:$(image_tag)" >/dev/null 2>&1 ||
  "$(dirname "$0")/docker-build.sh" interactive
# --no-deps: the stack is already up; -T: no terminal needed (CI has none).
compose --profile interactive run --rm -T --no-deps --entrypoint python \
  interactive-test docker/smoke.py "$1"
