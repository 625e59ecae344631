#!/usr/bin/env bash
# Make sure a Docker engine is running: if `docker info` fails, install Debian's docker.io and
# docker-compose (apt-get, as root) when dockerd is missing, start dockerd in the background
# (log: $DOCKERD_LOG, default /var/log/dockerd.log) and wait until it answers (90 s at most),
# after removing the stale pid files a copied or stopped machine leaves behind.
# Where systemd runs, prefer `systemctl start docker`; this is for CI machines and containers.
#
# usage: docker/docker-engine.sh [--help]
set -euo pipefail
source "$(dirname "$0")/lib.sh"
wants_help "${1:-}"

if docker info >/dev/null 2>&1; then
  note "Docker engine already running ($(docker version --format '{{.Server.Version}}'))"
  exit 0
fi

if ! command -v dockerd >/dev/null 2>&1 || ! { docker compose version || command -v docker-compose; } >/dev/null 2>&1; then
  [ "$(id -u)" = 0 ] || die "no Docker engine: install docker.io and docker-compose (needs root)"
  command -v apt-get >/dev/null 2>&1 || die "no Docker engine and no apt-get: install Docker by hand"
  note "installing docker.io and docker-compose"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io docker-compose >/dev/null
fi

[ "$(id -u)" = 0 ] || die "the Docker engine is not running and starting dockerd needs root"
clear_stale_pid /var/run/docker.pid dockerd
clear_stale_pid /var/run/docker/containerd/containerd.pid containerd

log="${DOCKERD_LOG:-/var/log/dockerd.log}"
note "starting dockerd (log: $log)"
nohup dockerd >"$log" 2>&1 &
dockerd_pid=$!

deadline=$((SECONDS + 90))
until docker info >/dev/null 2>&1; do
  if ! kill -0 "$dockerd_pid" 2>/dev/null || [ "$SECONDS" -ge "$deadline" ]; then
    echo "== the end of $log:" >&2
    tail -n 30 "$log" >&2 || true
    die "dockerd did not answer (exited, or no answer within 90 s)"
  fi
  sleep 0.5
done
note "Docker engine running ($(docker version --format '{{.Server.Version}}'))"
