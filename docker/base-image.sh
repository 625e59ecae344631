#!/usr/bin/env bash
# Print the Python base image to build on (the value for the Dockerfile's BASE_IMAGE), making
# sure it exists locally:
#   1. $BASE_IMAGE (default python:3.11-slim) if it is already present or can be pulled;
#   2. otherwise the local stand-in $LOCAL_BASE_IMAGE (default agentorch/python:3.11-slim-local),
#      built once from Debian bookworm with debootstrap (about a minute) and then reused.
# The stand-in behaves like the official image where the Dockerfile relies on it: Python 3.11
# with pip and venv, `python` and `pip` on PATH, not "externally managed", and this machine's CA
# bundle and pip index settings (so `pip install` inside `docker build` reaches the same index
# as pip on the host). Local file:// indexes of the host are left out: a build cannot see them.
#
# usage: docker/base-image.sh [--help] [--rebuild]
#   --rebuild   build the stand-in again even if its tag exists
# env: BASE_IMAGE, LOCAL_BASE_IMAGE, DEBIAN_MIRROR (default http://deb.debian.org/debian)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
wants_help "${1:-}"
require_docker

official="${BASE_IMAGE:-python:3.11-slim}"
local_tag="${LOCAL_BASE_IMAGE:-agentorch/python:3.11-slim-local}"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"

if [ "${1:-}" != --rebuild ]; then
  if docker image inspect "$official" >/dev/null 2>&1 || docker pull -q "$official" >/dev/null 2>&1; then
    echo "$official"
    exit 0
  fi
  if docker image inspect "$local_tag" >/dev/null 2>&1; then
    note "$official cannot be pulled; using the local stand-in $local_tag"
    echo "$local_tag"
    exit 0
  fi
fi

[ "$(id -u)" = 0 ] || die "building the stand-in base image needs root (debootstrap)"
command -v debootstrap >/dev/null 2>&1 || {
  note "installing debootstrap"
  apt-get install -y -qq debootstrap >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq debootstrap >/dev/null; }
}

root="$(mktemp -d /tmp/agentorch-base.XXXXXX)"
trap 'rm -rf "$root"' EXIT
note "$official cannot be pulled: building $local_tag with debootstrap (bookworm, $mirror)"
debootstrap --variant=minbase --include=python3,python3-venv,python3-pip,ca-certificates \
  bookworm "$root" "$mirror" >"$root.log" 2>&1 || { tail -20 "$root.log" >&2; die "debootstrap failed (log: $root.log)"; }
rm -f "$root.log"

# Like the official image: pip may install into the system Python, `python`/`pip` exist.
rm -f "$root"/usr/lib/python3*/EXTERNALLY-MANAGED
ln -sf /usr/bin/python3 "$root/usr/local/bin/python"
ln -sf /usr/bin/pip3 "$root/usr/local/bin/pip"

# This machine's CA bundle (it may hold a local CA that TLS to the package index needs).
if [ -f /etc/ssl/certs/ca-certificates.crt ]; then
  cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
fi

# The host pip's index settings, minus what only exists on this disk (file:// and local paths).
{
  echo "[global]"
  echo "cert = /etc/ssl/certs/ca-certificates.crt"
  echo "disable-pip-version-check = true"
  echo "timeout = ${PIP_DEFAULT_TIMEOUT:-60}"
  index="$(pip3 config get global.index-url 2>/dev/null || true)"
  index="${PIP_INDEX_URL:-$index}"
  case "$index" in http://* | https://*) echo "index-url = $index" ;; esac
  extra="${PIP_EXTRA_INDEX_URL:-$(pip3 config get global.extra-index-url 2>/dev/null || true)}"
  remote_extra=""
  for url in $extra; do case "$url" in http://* | https://*) remote_extra="$remote_extra $url" ;; esac; done
  [ -z "$remote_extra" ] || echo "extra-index-url =$remote_extra"
  trusted="${PIP_TRUSTED_HOST:-$(pip3 config get global.trusted-host 2>/dev/null || true)}"
  [ -z "$trusted" ] || echo "trusted-host = $trusted"
} >"$root/etc/pip.conf"

# Smaller, as the official slim image is: no apt lists, docs, man pages or caches.
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb \
  "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/usr/share/locale/* \
  "$root"/var/log/* "$root"/root/.cache

note "importing $local_tag"
tar -C "$root" -c . | docker import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV LANG=C.UTF-8' \
  --change 'CMD ["python3"]' \
  - "$local_tag" >/dev/null
echo "$local_tag"
