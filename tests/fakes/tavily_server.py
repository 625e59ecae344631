"""A fake Tavily API: a real HTTP server on 127.0.0.1 that speaks Tavily's wire format.

``POST /search`` with ``Authorization: Bearer <key>`` and a JSON body; it answers 401 for a
wrong key, 400 for a bad body, and otherwise a canned search answer shaped like Tavily's
(``response_time`` as text, as the live API sends it). Tests script the next answers
(``enqueue``: a status, headers, a delay) and read back what the agent sent (``requests``).

    with FakeTavily(api_key="tvly-test") as tavily:
        tavily.enqueue(status=429, headers={"retry-after": "7"})
        ...
        assert tavily.requests[0].headers["authorization"] == "Bearer tvly-test"
"""

from __future__ import annotations

import json
import threading
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

UNAUTHORIZED = {"detail": {"error": "Unauthorized: missing or invalid API key."}}
MAX_DELAY_S = 10.0
"""A scripted delay never holds a server thread longer than this (and stop() ends it at once)."""

_DEPTHS = {"basic", "advanced", "fast", "ultra-fast"}
_TOPICS = {"general", "news", "finance"}


@dataclass(frozen=True)
class Recorded:
    """One request as the server received it."""

    method: str
    path: str
    headers: dict[str, str]
    """Lower-cased names."""
    body: Any
    """The decoded JSON body, or the raw text when it was not JSON."""


@dataclass(frozen=True)
class Scripted:
    """How to answer one request instead of the default."""

    status: int | None = None
    """None: the normal answer (after ``delay_s``)."""
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0


class FakeTavily:
    def __init__(self, api_key: str = "tvly-test-key") -> None:
        self.api_key = api_key
        self.requests: list[Recorded] = []
        self._script: deque[Scripted] = deque()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        # A short poll interval: shutdown() waits up to one interval, and every test stops one.
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> FakeTavily:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # releases handlers sleeping in a scripted delay
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> FakeTavily:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def enqueue(
        self,
        status: int | None = None,
        body: Any = None,
        headers: dict[str, str] | None = None,
        delay_s: float = 0.0,
    ) -> None:
        """Answer the next authorized request this way (scripts are used in order)."""
        with self._lock:
            self._script.append(Scripted(status, body, dict(headers or {}), delay_s))

    def _record(self, recorded: Recorded) -> None:
        with self._lock:
            self.requests.append(recorded)

    def _next_script(self) -> Scripted | None:
        with self._lock:
            return self._script.popleft() if self._script else None

    def respond(self, recorded: Recorded) -> tuple[int, Any, dict[str, str]] | None:
        """The answer to one request; None when a delay was cut short by stop()."""
        self._record(recorded)
        if recorded.method != "POST" or recorded.path != "/search":
            return 404, {"detail": "Not Found"}, {}
        if recorded.headers.get("authorization") != f"Bearer {self.api_key}":
            return 401, UNAUTHORIZED, {}
        script = self._next_script() or Scripted()
        if script.delay_s and self._stopping.wait(min(script.delay_s, MAX_DELAY_S)):
            return None
        if script.status is not None:
            return script.status, script.body, script.headers
        problem = body_problem(recorded.body)
        if problem:
            return 400, {"detail": {"error": problem}}, {}
        return 200, search_answer(recorded.body), {}


def body_problem(body: Any) -> str | None:
    """What Tavily would reject in a search body, or None."""
    if not isinstance(body, dict):
        return "Request body must be a JSON object."
    query = body.get("query")
    if not isinstance(query, str) or not query.strip():
        return "Query is missing or empty."
    if body.get("search_depth", "basic") not in _DEPTHS:
        return f"Invalid search depth. Must be one of {sorted(_DEPTHS)}."
    if body.get("topic", "general") not in _TOPICS:
        return f"Invalid topic. Must be one of {sorted(_TOPICS)}."
    max_results = body.get("max_results", 5)
    if isinstance(max_results, bool) or not isinstance(max_results, int):
        return "max_results must be an integer."
    if not 0 <= max_results <= 20:
        return "max_results must be between 0 and 20."
    if not isinstance(body.get("include_answer", False), bool | str):
        return "include_answer must be a boolean or 'basic'/'advanced'."
    for key in ("include_domains", "exclude_domains"):
        value = body.get(key, [])
        if not isinstance(value, list) or not all(isinstance(d, str) for d in value):
            return f"{key} must be a list of strings."
    return None


def search_answer(body: dict[str, Any]) -> dict[str, Any]:
    """A Tavily-shaped answer: ``max_results`` results about the query, best first."""
    query = body["query"]
    count = body.get("max_results", 5)
    domains = body.get("include_domains") or ["example.com", "example.org"]
    results = [
        {
            "title": f"Result {n} for {query}",
            "url": f"https://{domains[(n - 1) % len(domains)]}/{n}",
            "content": f"Snippet {n} about {query}.",
            "score": round(0.9 - 0.1 * (n - 1), 4),
            "raw_content": None,
        }
        for n in range(1, count + 1)
    ]
    return {
        "query": query,
        "follow_up_questions": None,
        "answer": f"A short answer about {query}." if body.get("include_answer") else None,
        "images": [],
        "results": results,
        "response_time": "1.67",
    }


def _handler_for(fake: FakeTavily) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            self._answer()

        def do_GET(self) -> None:
            self._answer()

        def _answer(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                body: Any = json.loads(raw) if raw else None
            except ValueError:
                body = raw.decode("utf-8", "replace")
            headers = {key.lower(): value for key, value in self.headers.items()}
            outcome = fake.respond(Recorded(self.command, self.path, headers, body))
            if outcome is None:
                self.close_connection = True  # the server is stopping
                return
            self._send(*outcome)

        def _send(self, status: int, body: Any, headers: dict[str, str]) -> None:
            payload = b"" if body is None else json.dumps(body).encode()
            try:
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(payload)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(payload)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (a timeout test); nothing left to tell it

        def log_message(self, format: str, *args: Any) -> None:
            pass  # keep test output clean

    return Handler
