"""The gateway's OpenAI-compatible surface: ``POST /v1/chat/completions`` (``chat``,
``chat_stream``), ``POST /v1/responses`` (``responses*``), OpenAI's error shape (``errors``) and
the translation helpers the endpoints share (``translate``).

Every endpoint translates the request into the Anthropic Messages shape the gateway speaks
inside, calls the same service entry as ``/v1/messages`` (routes, aliases, retries, fallback,
circuits, streaming guarantees, the local model), and translates the answer back.
"""

OPENAI_ROUTES = frozenset({"/v1/chat/completions", "/v1/responses"})
"""The routes whose errors are rendered in OpenAI's shape."""
