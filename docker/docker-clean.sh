#!/usr/bin/env bash
# Remove the stack (containers, network, volumes) and the images this repository built: every
# tag of agentorch/<function>, and the untagged images older builds left (found by the label
# the Dockerfile sets), removed before the images they were built on. The base image
# (python:3.11-slim, or the local stand-in agentorch/python:3.11-slim-local that takes a minute
# or two to build) stays unless BASE=1.
#
# usage: docker/docker-clean.sh [--help]        env: BASE=1 also removes the base image
set -euo pipefail
source "$(dirname "$0")/lib.sh"
wants_help "${1:-}"
require_docker
"$(dirname "$0")/docker-stop.sh" --volumes
label=io.agentorch.project=agent-orchestrator
local_base="${LOCAL_BASE_IMAGE:-agentorch/python:3.11-slim-local}"

# Tags first, by name (an image with two tags is one id: removing by id fails on the second);
# agentorch/* names too, for images built before the label was set.
mapfile -t tagged < <({
  docker images --filter "label=$label" --format '{{.Repository}}:{{.Tag}}'
  docker images --filter 'reference=agentorch/*' --format '{{.Repository}}:{{.Tag}}'
} | grep -v -e ':<none>$' -e "^$local_base\$" | sort -u || true)
[ "${#tagged[@]}" = 0 ] || docker rmi "${tagged[@]}" >/dev/null
# Then what older builds left untagged, children before parents: each round removes the
# images nothing else is built on, until none is left.
for _ in 1 2 3 4 5 6 7 8 9 10; do
  mapfile -t dangling < <(docker images -q --filter dangling=true --filter "label=$label")
  [ "${#dangling[@]}" -gt 0 ] || break
  docker rmi "${dangling[@]}" >/dev/null 2>&1 || true
done
mapfile -t left < <(docker images -q --filter "label=$label")
[ "${#left[@]}" = 0 ] || die "images left (used by containers of another project?): ${left[*]}"
if [ "${BASE:-0}" = 1 ]; then
  wanted_base="$(env_value BASE_IMAGE)"
  for image in "$local_base" "${wanted_base:-python:3.11-slim}"; do
    if docker image inspect "$image" >/dev/null 2>&1; then docker rmi "$image" >/dev/null; fi
  done
  note "removed the stack, its images and the base image"
else
  note "removed the stack and its images; the base image stays (BASE=1 removes it too)"
fi
