"""Smoke tests against a running stack with the `test` profile (make test-gateway/-retry/-fallback).

    python docker/smoke.py gateway|retry|fallback [--gateway URL] [--fake URL]

gateway: a message through the gateway is answered by the fake Anthropic API; retry: the fake
answers 529 once, then 200, and ``x-gateway-attempts`` says 2; fallback: the fake answers 529
every time and Bedrock (moto) answers instead. Exit 1 with the reason on a failure.

It runs in the interactive image on the stack's network (docker/docker-smoke.sh), so the
defaults are service names; from the host: ``--gateway http://127.0.0.1:8585 --fake
http://127.0.0.1:8090``.
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.request
from typing import Any

MESSAGE = {"model": "default", "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}]}


def post(url: str, body: Any) -> tuple[int, dict[str, str], Any]:
    request = urllib.request.Request(
        url, json.dumps(body).encode(), {"content-type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:
            headers = {k.lower(): v for k, v in answer.headers.items()}
            return answer.status, headers, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        sys.exit(f"smoke failed: {url} answered {error.code}: {error.read()[:300]!r}")
    except OSError as error:  # refused, unknown host, timed out
        hint = "is the stack up with the test profile (make start-test)?"
        sys.exit(f"smoke failed: cannot reach {url} ({error}); {hint}")


def check(condition: bool, what: str, headers: dict[str, str], body: Any) -> None:
    gateway = {k: v for k, v in headers.items() if k.startswith("x-gateway")}
    print(f"{'ok  ' if condition else 'FAIL'} {what}: {gateway}")
    if not condition:
        sys.exit(f"smoke failed: {what}; body {json.dumps(body)[:300]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("case", choices=["gateway", "retry", "fallback"])
    parser.add_argument("--gateway", default="http://model-gateway:8585")
    parser.add_argument("--fake", default="http://fake-anthropic:8090")
    args = parser.parse_args()
    script = {"gateway": [], "retry": [{"status": 529}], "fallback": [{"status": 529}] * 12}
    post(f"{args.fake}/_fake/script", script[args.case])
    _, headers, body = post(f"{args.gateway}/v1/messages", MESSAGE)
    provider = headers.get("x-gateway-provider")
    if args.case == "gateway":
        check(provider == "anthropic", "answered by the fake Anthropic API", headers, body)
    elif args.case == "retry":
        ok = provider == "anthropic" and headers.get("x-gateway-attempts") == "2"
        check(ok, "529 retried, then answered", headers, body)
    else:
        check(provider == "bedrock", "529 every time: Bedrock (moto) answered", headers, body)


if __name__ == "__main__":
    main()
