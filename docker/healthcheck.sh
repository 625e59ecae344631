#!/bin/sh
# The images' HEALTHCHECK: exit 0 when GET http://127.0.0.1:$PORT/health answers 2xx (python,
# not curl: the slim base has no curl). usage: healthcheck [port]
exec python -S -c '
import sys, urllib.request
port = sys.argv[1]
try:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as answer:
        sys.exit(0 if 200 <= answer.status < 300 else 1)
except Exception as exc:
    print(f"unhealthy: {exc}", file=sys.stderr)
    sys.exit(1)
' "${1:-${PORT:-8080}}"
