"""Structured (one JSON object a line) logs on stderr, configured once per process.

Each line carries ``ts``, ``level``, ``logger``, ``msg``, any ``extra`` fields, Cloud Logging's
``severity`` (so Cloud Run and Cloud Functions file it under the right level), the
``request_id`` of the request being served (``shared.context``) when there is one, and the
``trace_id`` and ``span_id`` of the current span (``shared.telemetry``) when there is a trace.

``LOG_LEVEL`` picks the level (``INFO`` by default). An unknown value does not stop the
function: loggers are made when modules are imported, long before start-up could report a
clean error, and a typo in a log setting should not take a service down. It logs at INFO
instead, and the first line says so, naming the variable and the values it accepts.

No line carries a credential (an upstream that echoes a key in its error text must not put it
in the logs): each line goes through ``shared.redact``'s scrubber, which knows the credentials
configured in the environment and anything shaped like one; a process gives ``hide()`` any
other secret it holds.

``LOG_FILE`` (off when unset or empty) also appends the same lines to that file, which is
created if missing, but not its folder (in Compose, the gateway's log volume). A file that
cannot be opened is treated like a bad level: stderr only, and one warning line saying why.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Mapping
from typing import IO, Any

from shared import telemetry
from shared.context import current_request_id
from shared.errors import ConfigError
from shared.redact import Redactor

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
"""What ``LOG_LEVEL`` accepts (in any case); they are also Cloud Logging's severities."""
DEFAULT_LEVEL = "INFO"
ROOT_LOGGER = "agentorch"

_RESERVED = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message"}


def severity(levelno: int) -> str:
    """Cloud Logging's severity for a Python level (custom levels round down)."""
    for name in reversed(LEVELS):
        if levelno >= logging.getLevelName(name):
            return name
    return "DEBUG"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": round(record.created, 3),  # one time for every handler of the record
            "level": record.levelname.lower(),
            "severity": severity(record.levelno),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        request_id = current_request_id()
        if request_id is not None:
            entry["request_id"] = request_id
        if (ids := telemetry.ids()) is not None:
            entry["trace_id"], span_id = ids
            if span_id is not None:
                entry["span_id"] = span_id
        for key, value in record.__dict__.items():
            if key not in _RESERVED and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return _scrub(json.dumps(entry, default=str))


_held: set[str] = set()
_scrub = Redactor.from_environ()


def hide(*secrets: str | None) -> None:
    """Never write these values in a log line (credentials this process holds beyond those
    its environment configures, which ``configure`` hides already)."""
    global _scrub
    _held.update(s for s in secrets if s)
    _scrub = _scrub.adding(*_held)  # which hides each as a line holds it (JSON-escaped) too


def level_from(raw: str | None) -> int:
    """The logging level ``raw`` names (None or empty: INFO); ConfigError for anything else."""
    name = (raw or DEFAULT_LEVEL).strip().upper()
    if name not in LEVELS:
        allowed = ", ".join(LEVELS)
        raise ConfigError(f"$LOG_LEVEL={raw}: unknown log level; use one of {allowed}")
    return logging.getLevelName(name)  # type: ignore[no-any-return]


_handlers: list[logging.Handler] = []


def configure(environ: Mapping[str, str] | None = None, stream: IO[str] | None = None) -> None:
    """Send ``agentorch`` logs as JSON lines to ``stream`` (stderr) at ``$LOG_LEVEL``, and
    to ``$LOG_FILE`` too when it is set.

    ``get_logger`` calls it once; calling it again replaces the handlers it installed.
    """
    global _scrub
    environ = os.environ if environ is None else environ
    _scrub = Redactor.from_environ(environ).adding(*_held)
    root = logging.getLogger(ROOT_LOGGER)
    for old in _handlers:
        root.removeHandler(old)
        old.close()
    _handlers[:] = [logging.StreamHandler(sys.stderr if stream is None else stream)]
    problems: list[str] = []
    if path := environ.get("LOG_FILE", "").strip():
        try:
            # Appending: the workers of one function share the file, and after logrotate's
            # copytruncate each write still lands at the (new) end.
            _handlers.append(logging.FileHandler(path, mode="a", encoding="utf-8"))
        except OSError as exc:
            problems.append(
                f"$LOG_FILE={path}: cannot append to it ({exc.strerror}); logging to stderr only"
            )
    for handler in _handlers:
        handler.setFormatter(JsonFormatter())
        root.addHandler(handler)
    root.propagate = False
    try:
        root.setLevel(level_from(environ.get("LOG_LEVEL")))
    except ConfigError as exc:
        root.setLevel(logging.INFO)
        problems.insert(0, f"{exc}; logging at {DEFAULT_LEVEL} instead")
    for problem in problems:
        root.getChild("logs").warning(problem)


def get_logger(name: str) -> logging.Logger:
    """A logger under ``agentorch``; the first call sets up JSON output at ``LOG_LEVEL``."""
    if not _handlers:
        configure()
    return logging.getLogger(ROOT_LOGGER).getChild(name)
