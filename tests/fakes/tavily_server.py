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

from typing import Any

from tests.fakes.server import Exchange, FakeServer, RecordedRequest, Reply

UNAUTHORIZED = {"detail": {"error": "Unauthorized: missing or invalid API key."}}

_DEPTHS = {"basic", "advanced", "fast", "ultra-fast"}
_TOPICS = {"general", "news", "finance"}


class FakeTavily(FakeServer):
    def __init__(self, api_key: str = "tvly-test-key") -> None:
        super().__init__()
        self.api_key = api_key

    # Tavily's faults are a status or a delay, so its script takes them as keywords.
    def enqueue(
        self,
        status: int | None = None,
        body: Any = None,
        headers: dict[str, str] | None = None,
        delay_s: float = 0.0,
    ) -> None:
        """Answer the next authorized request this way (scripts are used in order); with no
        ``status``, the normal answer after ``delay_s``."""
        # Status 0 in the script stands for "the normal answer".
        super().enqueue(Reply(status or 0, body, dict(headers or {}), delay_s))

    def answer(self, request: RecordedRequest, exchange: Exchange) -> None:
        if request.method != "POST" or request.path != "/search":
            exchange.send_json(404, {"detail": "Not Found"})
        elif request.headers.get("authorization") != f"Bearer {self.api_key}":
            exchange.send_json(401, UNAUTHORIZED)
        else:
            scripted = self.next_scripted() or Reply(0)
            if scripted.status:
                exchange.play(scripted)
            elif not self.pause(scripted.delay_s):
                exchange.cut()  # the server is stopping
            elif problem := body_problem(request.body):
                exchange.send_json(400, {"detail": {"error": problem}})
            else:
                exchange.send_json(200, search_answer(request.body))


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
