#!/usr/bin/env bash
# Show each function container's health, then whether the gateway's keyed endpoint answers a
# client of this configuration: GET /providers on the gateway's published port, with the first
# key of GATEWAY_API_KEYS (environment or .env; the one the orchestrator and `agentorch` use).
# A refusal there (401: the gateway wants another key) is unhealthy: tasks would fail with it.
# Exit 1 unless all is healthy.
# --wait: poll until the containers are healthy (at most $WAIT_TIMEOUT_S, default 120 s).
#
# usage: docker/docker-health.sh [--help] [--wait]
set -euo pipefail
source "$(dirname "$0")/lib.sh"
wants_help "${1:-}"
require_docker
services=("${FUNCTION_SERVICES[@]}")
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

# The status of GET /providers through the published port ("none" when nothing answers).
providers_status() {
  local published
  published="$(compose port model-gateway 8585 2>/dev/null | tail -n 1)"
  [ -n "$published" ] || { echo unpublished; return; }
  PROVIDERS_KEYS="$(env_value GATEWAY_API_KEYS)" PROVIDERS_URL="http://127.0.0.1:${published##*:}/providers" \
    python3 -S -c '
import os, urllib.error, urllib.request
key = next((k.strip() for k in os.environ["PROVIDERS_KEYS"].split(",") if k.strip()), "")
request = urllib.request.Request(os.environ["PROVIDERS_URL"], headers={"x-api-key": key} if key else {})
try:
    with urllib.request.urlopen(request, timeout=5) as answer:
        print(answer.status)
except urllib.error.HTTPError as error:
    print(error.code)
except OSError:
    print("none")
'
}

if [ "${lines[0]##* }" = healthy ]; then
  status="$(providers_status)"
  case "$status" in
    200) lines+=("$(printf '%-22s %s' "gateway /providers" "200")") ;;
    unpublished) lines+=("$(printf '%-22s %s' "gateway /providers" "not checked: the gateway publishes no host port")") ;;
    401)
      bad=1
      lines+=("$(printf '%-22s %s' "gateway /providers" "401: the gateway wants a key this configuration does not give (GATEWAY_API_KEYS in .env, then make restart)")")
      ;;
    *)
      bad=1
      lines+=("$(printf '%-22s %s' "gateway /providers" "unhealthy: answered $status")")
      ;;
  esac
fi
printf '%s\n' "${lines[@]}"
[ "$bad" = 0 ] || die "not every service is healthy (docker compose logs <service> says why)"
