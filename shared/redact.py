"""Credentials scrubbed out of text that came from elsewhere, before it is stored or shown.

An upstream may quote what it was sent (an API that echoes the ``x-api-key`` it refused), and
its text becomes error messages, ``/providers``' ``last_error``, log lines and a run's trace.
``Redactor`` replaces every configured credential (the variables in ``CREDENTIAL_VARIABLES``,
each entry of ``GATEWAY_API_KEYS`` and ``ORCHESTRATOR_API_KEYS``, each header value of an
``AGENT_*_HEADERS``) and anything shaped like one (an Anthropic key, an AWS access key id, a
Tavily key, a long bearer token, a JWT such as ``OUTBOUND_AUTH=google``'s ID tokens, quoted
bare by a callee) with ``[redacted]``; a configured one also as JSON and URLs
write it (escaped, percent-encoded). The gateway scrubs each upstream error (message and
headers) where its router first sees it, an upstream's ``error`` event in a stream, and the
upstream headers it passes back on success; the orchestrator scrubs each error it records
into a run, so that a run stays clean even behind a gateway that leaks.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from urllib.parse import quote

from shared.errors import AgentOrchestratorError, ServiceError

MARKER = "[redacted]"
CREDENTIAL_VARIABLES = (
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_AUTH_TOKEN",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_ACCESS_KEY_ID",
    "AWS_BEARER_TOKEN_BEDROCK",
    "TAVILY_API_KEY",
    "GATEWAY_API_KEY",
    "ORCHESTRATOR_API_KEY",
)
"""Variables that each hold one secret."""
KEY_LIST_VARIABLES = ("GATEWAY_API_KEYS", "ORCHESTRATOR_API_KEYS")
"""Variables that hold comma-separated secrets."""
AGENT_HEADER_VARIABLES = re.compile(r"^AGENT_[A-Z0-9_]+_HEADERS$")
"""Variables that hold an agent's headers (``name=value,...``, its auth): each value is a
secret (the orchestrator's ``agent_sources`` reads them)."""
MCP_HEADER_VARIABLES = re.compile(r"^MCP_[A-Z0-9_]+_HEADERS$")
"""The same for an MCP server the orchestrator calls (``MCP_GITHUB_HEADERS``)."""
OTLP_HEADER_VARIABLES = (
    "OTEL_EXPORTER_OTLP_HEADERS",
    "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
    "OTEL_EXPORTER_OTLP_METRICS_HEADERS",
)
"""The OTLP exporters' headers (``name=value,...``): a collector's API key (Honeycomb's,
Datadog's) is one of them."""
MIN_SECRET_CHARS = 8
"""A configured value shorter than this is not scrubbed: no real key is that short, and
replacing a short word (moto's ``testing``) everywhere would garble ordinary messages."""
_SHAPES = re.compile(
    r"sk-ant-[A-Za-z0-9_\-]{8,}"  # Anthropic API keys and OAuth tokens
    r"|\b(?:AKIA|ASIA)[A-Z0-9]{16}\b"  # AWS access key ids (long-term and temporary)
    r"|\btvly-[A-Za-z0-9_\-]{8,}"  # Tavily keys
    r"|(?<=(?i:bearer) )[A-Za-z0-9._~+/\-]{20,}=*"  # a long bearer token (the word stays)
    r"|\beyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]*"  # a JWT (an ID token)
)
_SHAPE_HINTS = ("sk-ant-", "AKIA", "ASIA", "tvly-", "earer ", "EARER ", "eyJ")
"""Text holding none of these cannot match ``_SHAPES``: a check far cheaper than searching
with it (bench/RESULTS.md, "Figures quoted in the code")."""


@dataclass(frozen=True)
class Redactor:
    """Scrubs ``secrets`` and credential-shaped strings out of text: ``redactor(text)``."""

    secrets: tuple[str, ...] = ()
    """Longest first, so that a secret containing another is replaced whole."""
    _clue: re.Pattern[str] = field(init=False, repr=False, compare=False)
    """Matches what text must hold to need scrubbing: a shape's hint or a secret's start."""

    def __post_init__(self) -> None:
        heads = {secret[:MIN_SECRET_CHARS] for secret in self.secrets}
        clues = "|".join(re.escape(clue) for clue in (*_SHAPE_HINTS, *sorted(heads)))
        object.__setattr__(self, "_clue", re.compile(clues))  # frozen: set once, here

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> Redactor:
        """The credentials configured in ``environ`` (``os.environ`` by default)."""
        environ = os.environ if environ is None else environ
        values = [environ.get(name) or "" for name in CREDENTIAL_VARIABLES]
        for name in KEY_LIST_VARIABLES:
            values += (environ.get(name) or "").split(",")
        for name, raw in environ.items():
            if (
                AGENT_HEADER_VARIABLES.match(name)
                or MCP_HEADER_VARIABLES.match(name)
                or name in OTLP_HEADER_VARIABLES
            ):
                values += header_values(raw)
        return cls().adding(*values)

    def adding(self, *secrets: str | None) -> Redactor:
        """This scrubber and ``secrets`` too (those long enough to be credentials), each also
        as text that quotes it would hold it: JSON-escaped (a log line, an error body) and
        URL-encoded (an AWS secret's ``/`` and ``+`` as ``%2F`` and ``%2B``)."""
        kept = {s.strip() for s in secrets if s and len(s.strip()) >= MIN_SECRET_CHARS}
        kept |= {form for secret in kept for form in _encoded(secret)}
        return Redactor(tuple(sorted(kept | set(self.secrets), key=len, reverse=True)))

    def __call__(self, text: str) -> str:
        if any(hint in text for hint in _SHAPE_HINTS):
            text = _SHAPES.sub(MARKER, text)  # first: a key is replaced whole, not a part
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, MARKER)
            text = _cut_secret(text, secret)
        return text

    def may_hold(self, text: str) -> bool:
        """Whether ``text`` can hold anything to scrub: a check far cheaper than scrubbing,
        for text that is nearly always clean (an upstream's response headers)."""
        return self._clue.search(text) is not None

    def headers(self, headers: Mapping[str, str]) -> dict[str, str]:
        """``headers`` with each value scrubbed (an upstream may echo a key in any of them).
        Clean headers, nearly always, cost one check of all their values together."""
        if not self.may_hold("\n".join(headers.values())):
            return dict(headers)
        return {name: self(value) for name, value in headers.items()}

    def scrub(self, error: AgentOrchestratorError) -> None:
        """Scrub ``error``'s message in place (``str(error)`` too), and the values of the
        headers it carries back to a caller (an upstream's ``request-id``, rate-limit state)."""
        error.message = self(error.message)
        error.args = (error.message,)
        if isinstance(error, ServiceError):
            error.headers.update(self.headers(error.headers))


def redact(text: str, environ: Mapping[str, str] | None = None) -> str:
    """``text`` without the credentials ``environ`` configures (read now) or any that look
    like one; for the rare text (an error) where building a ``Redactor`` per call is cheap."""
    return Redactor.from_environ(environ)(text)


def _encoded(secret: str) -> set[str]:
    """The other forms ``secret`` takes in text that quotes it (those that differ from it)."""
    forms = {json.dumps(secret)[1:-1], json.dumps(secret, ensure_ascii=False)[1:-1]}
    forms.add(quote(secret, safe=""))
    forms.discard(secret)
    return forms


def header_values(raw: str) -> list[str]:
    """The secrets in ``name=value,...`` (an ``AGENT_*_HEADERS`` variable)."""
    return header_secrets(item.partition("=")[2] for item in raw.split(","))


def header_secrets(values: Iterable[str]) -> list[str]:
    """Header values, and each one's last word too: of ``Bearer <token>`` the token alone is
    the secret, and may be quoted without its scheme."""
    secrets = []
    for value in values:
        value = value.strip()
        secrets += [value, value.rsplit(" ", 1)[-1]]
    return secrets


def _cut_secret(text: str, secret: str) -> str:
    """A secret cut short where the text was (an upstream body quoted to 200 characters)
    still leaks its first characters: a tail of ``text`` that begins ``secret`` goes too."""
    end = len(text.rstrip(" .\n"))
    head = secret[:MIN_SECRET_CHARS]
    at = text.find(head, max(0, end - len(secret) + 1), end)
    while at != -1:
        if secret.startswith(text[at:end]):
            return text[:at] + MARKER + text[end:]
        at = text.find(head, at + 1, end)
    return text
