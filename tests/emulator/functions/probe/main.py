"""A tiny function the emulator's tests run as a service.

``GET /health`` answers 200 (503 while ``UNHEALTHY`` is set) with the emulator's instance token;
any other path shows the variables named in ``SHOW``. At start it prints ``PROBE_SAY`` and exits
with ``PROBE_EXIT`` if that is set, and records whether ``UPSTREAM_URL`` answered.
"""

import json
import os
import sys
import urllib.request

from starlette.requests import Request
from starlette.responses import Response

from shared.entry import http

print(os.environ.get("PROBE_SAY", "probe starting"), flush=True)
if os.environ.get("PROBE_EXIT"):
    sys.exit(int(os.environ["PROBE_EXIT"]))


def _upstream_status() -> int | None:
    url = os.environ.get("UPSTREAM_URL")
    if not url:
        return None
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as reply:
            return int(reply.status)
    except OSError:
        return None


UPSTREAM_AT_START = _upstream_status()


@http
async def probe(request: Request) -> Response:
    if request.url.path == "/health":
        # As shared.asgi does: echo the emulator's token, so the supervisor knows it is us.
        token = {"x-agentorch-instance": os.environ.get("AGENTORCH_INSTANCE", "")}
        return Response("{}", 503 if os.environ.get("UNHEALTHY") else 200, headers=token)
    names = os.environ.get("SHOW", "").split(",")
    body = {"env": {n: os.environ.get(n) for n in names if n}, "upstream": UPSTREAM_AT_START}
    body["pid"] = os.getpid()
    return Response(json.dumps(body), 200, media_type="application/json")
