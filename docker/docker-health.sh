#!/usr/bin/env bash
# Show each function container's health; exit 1 unless all are healthy.
# --wait: poll until all are healthy (at most $WAIT_TIMEOUT_S, default 120 s).
#
# usage: docker/docker-health.sh [--help] [--wait]
set -euo pipefail
source "$(dirname "$0")/lib.sh"
wants_help "${1:-}"
require_docker
services=(model-gateway orchestrator calculator-agent search-agent data-processor-agent tavily-agent)
deadline=$((SECONDS + ${WAIT_TIMEOUT_S:-120}))
while :; do
  bad=0 lines=()
  for service in "${services[@]}"; do
    id="$(compose ps -q "$service" 2>/dev/null || true)"
    state="$([ -n "$id" ] && docker inspect -f '{{.State.Health.Status}}' "$id" 2>/dev/null || echo missing)"
    [ "$state" = healthy ] || bad=1
    lines+=("$(printf '%-22s %s' "$service" "$state")")
  done
  if [ "$bad" = 0 ] || [ "${1:-}" != --wait ] || [ "$SECONDS" -ge "$deadline" ]; then break; fi
  sleep 1
done
printf '%s\n' "${lines[@]}"
[ "$bad" = 0 ] || die "not every service is healthy (docker compose logs <service> says why)"
