#!/usr/bin/env bash
# Stop the stack and remove its containers and network (volumes too with --volumes).
#
# usage: docker/docker-stop.sh [--help] [--volumes]
set -euo pipefail
source "$(dirname "$0")/lib.sh"
wants_help "${1:-}"
require_docker
args=(down --remove-orphans -t 10)
[ "${1:-}" = --volumes ] && args+=(-v)
compose "${args[@]}"
