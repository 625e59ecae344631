#!/usr/bin/env bash
# Start the stack in the background and wait until every function is healthy (120 s at most).
# PROD=1 adds docker-compose.prod.yml. Builds missing images first (docker/docker-build.sh;
# with COMPOSE_PROFILES=test, the fakes' image too), of the TAG Compose runs (environment or .env).
# Host ports: GATEWAY_PORT (8585) and ORCHESTRATOR_PORT (8080), from the environment or .env.
#
# usage: docker/docker-start.sh [--help] [compose up args ...]
set -euo pipefail
source "$(dirname "$0")/lib.sh"
wants_help "${1:-}"
require_docker
compose_cmd
extra=()
[ "${PROD:-0}" = 1 ] && [ "${COMPOSE[0]}" = docker-compose ] && extra=(--compatibility)
images=("${FUNCTION_IMAGES[@]}")
case ",$(env_value COMPOSE_PROFILES)," in *,test,*) images+=(fakes) ;; esac
for image in "${images[@]}"; do
  docker image inspect "agentorch/$image:$(image_tag)" >/dev/null 2>&1 || { "$(dirname "$0")/docker-build.sh"; break; }
done
compose "${extra[@]}" up -d --no-build "$@"
"$(dirname "$0")/docker-health.sh" --wait
