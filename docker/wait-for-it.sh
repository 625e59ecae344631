#!/bin/sh
# Wait until an HTTP URL answers 2xx (default: its /health), then run the rest of the command.
# usage: wait-for-it.sh [--help] URL [TIMEOUT_S (default 60)] [-- command ...]
# Exits 1 with a message naming the URL when it does not answer in time.
case "${1:-}" in -h | --help | "") sed -n '2,4s/^# //p' "$0"; [ -n "${1:-}" ]; exit $?;; esac
url="$1"; shift
timeout="${1:-60}"; [ $# -gt 0 ] && [ "$1" != -- ] && shift
[ "${1:-}" = -- ] && shift
python -S - "$url" "$timeout" <<'PY' || exit 1
import sys, time, urllib.request
url, timeout = sys.argv[1], float(sys.argv[2])
deadline = time.monotonic() + timeout
while True:
    try:
        with urllib.request.urlopen(url, timeout=2) as answer:
            if 200 <= answer.status < 300:
                break
    except Exception as exc:
        problem = exc
    if time.monotonic() > deadline:
        sys.exit(f"wait-for-it: {url} did not answer within {timeout:g} s ({problem})")
    time.sleep(0.25)
PY
[ $# -gt 0 ] && exec "$@"
exit 0
