"""Where the agents come from, beyond the config file: ``$AGENTS`` and the headers each agent
is called with.

Any service that answers ``GET /schema`` and ``POST /`` in the agent contract is an agent, so
one that runs elsewhere (another team's function, a process on the laptop) is added by URL:

    AGENTS="weather=https://weather.example.run.app,geo=http://localhost:9000"

An entry adds an agent, or points one the config file names elsewhere (the environment wins
over the file, as ``CALCULATOR_URL`` does); the agent then gets everything a built-in one
gets (schema fetch, validation, retries, circuit, budgets, trace, ``GET /agents``).

Headers (an agent's auth) come from the environment only, never from a file:

    AGENT_WEATHER_HEADERS="authorization=Bearer abc...,x-team=blue"

one variable per agent, named from the agent's name upper-cased with ``-`` as ``_``, holding
comma-separated ``name=value`` pairs (the shape of ``OTEL_EXPORTER_OTLP_HEADERS``). Their values
are secrets: ``shared.redact`` scrubs every ``AGENT_*_HEADERS`` value, and no error here quotes one.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping

from functions.orchestrator.config import AGENTS_VARIABLE
from shared.errors import ConfigError
from shared.manifest import MANIFEST_FILE, url_variable
from shared.redact import AGENT_HEADER_VARIABLES, MCP_HEADER_VARIABLES

AGENT_PREFIX, MCP_PREFIX = "AGENT", "MCP"
_HEADER_VARIABLES = {AGENT_PREFIX: AGENT_HEADER_VARIABLES, MCP_PREFIX: MCP_HEADER_VARIABLES}
_NOUN = {AGENT_PREFIX: "agent", MCP_PREFIX: "MCP server"}

_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")  # an HTTP token (RFC 9110)
_TRANSPORT_HEADERS = {"host", "content-length", "transfer-encoding", "connection", "content-type"}
"""Set by the client itself; an agent's own headers may not change them."""


def agent_sources(
    names: Iterable[str],
    environ: Mapping[str, str],
    config_file: str,
    builtin: Collection[str] = (),
) -> dict[str, str]:
    """Where each agent's URL comes from, for ``GET /agents``: ``$AGENTS``, the variable that
    overrides it (``$CALCULATOR_URL``), the manifest (``builtin``: ``functions.yaml``), or the
    config file."""
    from_env = {name.strip() for name, _ in _pairs(environ.get(AGENTS_VARIABLE, ""))}
    sources = {}
    for name in names:
        if name in from_env:
            sources[name] = f"${AGENTS_VARIABLE}"
        elif environ.get(url_variable(name)):
            sources[name] = f"${url_variable(name)}"
        else:
            sources[name] = MANIFEST_FILE if name in builtin else config_file
    return sources


def header_variable(name: str, prefix: str = AGENT_PREFIX) -> str:
    """The variable holding agent ``name``'s headers: ``AGENT_<NAME>_HEADERS`` (an MCP
    server's: ``MCP_<NAME>_HEADERS``)."""
    return f"{prefix}_{name.upper().replace('-', '_')}_HEADERS"


def agent_headers(
    names: Iterable[str], environ: Mapping[str, str], prefix: str = AGENT_PREFIX
) -> dict[str, dict[str, str]]:
    """Each agent's headers from its ``AGENT_<NAME>_HEADERS`` (only agents that have one); with
    ``prefix="MCP"``, each MCP server's from ``MCP_<NAME>_HEADERS``.

    A variable of that shape for no agent is a typo that would silently send no auth, and
    two agents whose names give one variable cannot be told apart: both stop start-up."""
    owners: dict[str, str] = {}
    for name in names:
        variable = header_variable(name, prefix)
        if variable in owners:
            raise ConfigError(
                f"agents {owners[variable]!r} and {name!r} would both read ${variable}; rename one"
            )
        owners[variable] = name
    for variable in environ:
        if _HEADER_VARIABLES[prefix].match(variable) and variable not in owners:
            raise ConfigError(
                f"${variable}: no {_NOUN[prefix]} is named for it "
                f"(named: {', '.join(owners.values())})"
            )
    return {
        name: _headers(variable, environ[variable])
        for variable, name in owners.items()
        if environ.get(variable, "").strip()
    }


def _headers(variable: str, raw: str) -> dict[str, str]:
    headers: dict[str, str] = {}
    for number, (key, value) in enumerate(_pairs(raw), start=1):
        # Never quote a value in these messages: it is a secret.
        where = f"${variable} entry {number}"
        if not _HEADER_NAME.match(key):
            raise ConfigError(f"{where}: write it as header-name=value")
        if not value or any(c in value for c in "\r\n\0"):
            raise ConfigError(f"{where} ({key}): the value is empty or holds a line break")
        if key.lower() in _TRANSPORT_HEADERS:
            raise ConfigError(f"{where}: {key} is set by the client itself")
        if key.lower() in headers:
            raise ConfigError(f"{where}: {key} is named twice")
        headers[key.lower()] = value
    return headers


def _pairs(raw: str) -> list[tuple[str, str]]:
    """``a=1,b=2`` as pairs; an item without ``=`` is a pair with an empty value."""
    pairs = []
    for item in raw.split(","):
        if item.strip():
            key, _, value = item.partition("=")
            pairs.append((key.strip(), value.strip()))
    return pairs
