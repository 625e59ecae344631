#!/bin/sh
# The interactive image's entrypoint: wait for the orchestrator ($ORCHESTRATOR_URL/health, at
# most $WAIT_TIMEOUT_S = 120 s), then run `agentorch <args>` (default `ask`: an interactive
# prompt; `ask "task" --json` answers one task). usage: entrypoint-interactive.sh [--help] [args]
case "${1:-}" in -h | --help) sed -n '2,4s/^# //p' "$0"; exit 0 ;; esac
url="${ORCHESTRATOR_URL:-http://orchestrator:8080}"
wait-for-it.sh "$url/health" "${WAIT_TIMEOUT_S:-120}" || exit 1
exec agentorch "$@"
