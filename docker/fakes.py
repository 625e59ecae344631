"""The `test` profile's fakes as container processes (tests/fakes/ behind a network port).

    python docker/fakes.py anthropic --port 8090   # the fake Anthropic API, scriptable over HTTP
    python docker/fakes.py bedrock --port 5000     # moto's bedrock-runtime, answering messages

The Anthropic fake takes its script over HTTP: ``POST /_fake/script`` with a JSON list, each
item one upcoming answer — ``{"status": 529}`` (an error, optional ``retry_after``),
``{"text": "...", "delay_s": 2, "cut_after_events": 3}`` (an answer, delayed or a stream cut
short), ``{"disconnect": true}``; a new script replaces what is left of the last one.
``GET /_fake/requests`` counts what arrived.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sys
import threading
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.fakes.anthropic_server import Answer, FakeAnthropic, Fault  # noqa: E402
from tests.fakes.bedrock import FakeBedrockServer  # noqa: E402
from tests.fakes.server import Disconnect, Exchange, RecordedRequest  # noqa: E402

CONTROL = "/_fake/"


def scripted(item: dict[str, Any]) -> Answer | Fault | Disconnect:
    """One script item from its JSON form."""
    if item.get("disconnect"):
        return Disconnect(delay_s=float(item.get("delay_s", 0)))
    if "status" in item:
        return Fault(int(item["status"]), retry_after=item.get("retry_after"))
    options = {k: item[k] for k in ("delay_s", "cut_after_events") if k in item}
    return Answer.text(str(item.get("text", "scripted answer")), **options)


class ScriptableAnthropic(FakeAnthropic):
    """The fake Anthropic API plus the ``/_fake/`` control routes."""

    def answer(self, request: RecordedRequest, exchange: Exchange) -> None:
        if not request.route.startswith(CONTROL):
            return super().answer(request, exchange)
        if request.route == CONTROL + "script" and isinstance(request.body, list):
            while self.next_scripted() is not None:  # a new script replaces what is left
                pass
            self.enqueue(*(scripted(item) for item in request.body))
            return exchange.send_json(200, {"pending": self.pending})
        if request.route == CONTROL + "requests":
            messages = [r for r in self.requests if not r.route.startswith(CONTROL)]
            return exchange.send_json(200, {"count": len(messages), "pending": self.pending})
        return exchange.send_json(404, {"error": f"no control route {request.route}"})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("fake", choices=["anthropic", "bedrock"])
    parser.add_argument("--host", default="0.0.0.0")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    server: Any = (
        ScriptableAnthropic(host=args.host, port=args.port)
        if args.fake == "anthropic"
        else FakeBedrockServer(host=args.host, port=args.port)
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with server:
        print(json.dumps({"fake": args.fake, "listening": args.port}), flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            stop.wait()


if __name__ == "__main__":
    main()
