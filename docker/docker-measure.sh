#!/usr/bin/env bash
# Measure each image: its size, what it adds to its base, and the time from `docker run` to
# (a) the first 200 from /health and (b) Docker reporting the container healthy (the image's
# HEALTHCHECK, every 2 s). Prints a Markdown table (for bench/RESULTS.md). Local only: each
# container publishes its port on 127.0.0.1 and is removed afterwards.
#
# usage: docker/docker-measure.sh [--help] [image-name ...]   (default: every function)
# env: TAG (default latest)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
wants_help "${1:-}"
require_docker

names=("$@")
[ "${#names[@]}" -gt 0 ] || names=("${FUNCTION_IMAGES[@]}")
tag="${TAG:-latest}"
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }

echo "| image | size MB | adds to base MB | run -> /health 200 s | run -> healthy s |"
echo "| --- | --- | --- | --- | --- |"
for name in "${names[@]}"; do
  image="agentorch/$name:$tag"
  port="$(docker image inspect --format '{{range $p, $_ := .Config.ExposedPorts}}{{$p}}{{end}}' "$image" | cut -d/ -f1)"
  base_size="$(docker image inspect --format '{{.Size}}' "$(docker history -q "$image" | tail -1)")"
  size="$(docker image inspect --format '{{.Size}}' "$image")"
  container="agentorch-measure-$name"
  docker rm -f "$container" >/dev/null 2>&1 || true
  start="$(now)"
  docker run -d --name "$container" -p "127.0.0.1::$port" "$image" >/dev/null
  host_port="$(docker port "$container" "$port" | head -1 | sed 's/.*://')"
  deadline=$((SECONDS + 30)) http="" healthy=""
  while [ "$SECONDS" -lt "$deadline" ] && [ -z "$healthy" ]; do
    if [ -z "$http" ] && python3 -c "import urllib.request as u; u.urlopen('http://127.0.0.1:$host_port/health', timeout=1)" 2>/dev/null; then
      http="$(elapsed "$start" "$(now)")"
    fi
    [ "$(docker inspect -f '{{.State.Health.Status}}' "$container")" = healthy ] && healthy="$(elapsed "$start" "$(now)")"
    sleep 0.05
  done
  [ -n "$healthy" ] || { docker logs "$container" 2>&1 | tail -20 >&2; docker rm -f "$container" >/dev/null; die "$image did not become healthy within 30 s"; }
  docker rm -f "$container" >/dev/null
  echo "| $name | $((size / 1000000)) | $(((size - base_size) / 1000000)) | ${http:-?} | $healthy |"
done
