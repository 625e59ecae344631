"""Log lines: JSON with Cloud Logging's severity and the current request id; LOG_LEVEL checked."""

from __future__ import annotations

import asyncio
import io
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from shared import logs
from shared.context import REQUEST_ID, bind_request_id
from shared.errors import ConfigError

REPO_ROOT = Path(__file__).resolve().parents[2]
ReadLines = Callable[[], list[dict[str, Any]]]


def capture(level: str) -> tuple[io.StringIO, ReadLines]:
    stream = io.StringIO()
    logs.configure({"LOG_LEVEL": level}, stream=stream)

    def lines() -> list[dict[str, Any]]:
        return [json.loads(line) for line in stream.getvalue().splitlines()]

    return stream, lines


@pytest.fixture
def logged() -> Iterator[ReadLines]:
    """The JSON lines the ``agentorch`` loggers write during the test, at DEBUG."""
    _, lines = capture("debug")
    yield lines
    logs.configure()  # back to stderr at the process's LOG_LEVEL


def test_every_line_carries_its_cloud_logging_severity(logged: ReadLines) -> None:
    log = logs.get_logger("test")
    log.debug("d")
    log.info("i")
    log.warning("w")
    log.error("e")
    log.critical("c")
    assert [(line["msg"], line["severity"]) for line in logged()] == [
        ("d", "DEBUG"),
        ("i", "INFO"),
        ("w", "WARNING"),
        ("e", "ERROR"),
        ("c", "CRITICAL"),
    ]
    assert logged()[0]["level"] == "debug"
    assert logged()[0]["logger"] == "agentorch.test"


def test_a_line_carries_the_request_being_served(logged: ReadLines) -> None:
    log = logs.get_logger("test")
    log.info("outside")
    token = bind_request_id("req-123")
    try:
        log.info("inside", extra={"route": "/v1/messages"})
    finally:
        REQUEST_ID.reset(token)
    log.info("after")
    outside, inside, after = logged()
    assert "request_id" not in outside and "request_id" not in after
    assert inside["request_id"] == "req-123"
    assert inside["route"] == "/v1/messages"


def test_concurrent_requests_each_log_their_own_id(logged: ReadLines) -> None:
    log = logs.get_logger("test")

    async def serve(request_id: str) -> None:
        bind_request_id(request_id)
        await asyncio.sleep(0)  # yield, so that the other request runs in between
        log.info("answered")

    async def both() -> None:
        await asyncio.gather(serve("first"), serve("second"))

    asyncio.run(both())
    assert sorted(line["request_id"] for line in logged()) == ["first", "second"]


def test_log_level_filters_lower_levels() -> None:
    _, lines = capture("Warning")
    try:
        logs.get_logger("test").info("hidden")
        logs.get_logger("test").warning("shown")
        assert [line["msg"] for line in lines()] == ["shown"]
    finally:
        logs.configure()


def test_an_unknown_level_names_the_variable_and_the_allowed_values() -> None:
    with pytest.raises(ConfigError) as caught:
        logs.level_from("verbose")
    assert str(caught.value) == (
        "$LOG_LEVEL=verbose: unknown log level; use one of DEBUG, INFO, WARNING, ERROR, CRITICAL"
    )


def test_an_unknown_level_logs_at_info_with_one_warning_instead_of_crashing() -> None:
    script = "from shared.logs import get_logger as g; g('x').info('up'); g('x').debug('no')"
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO_ROOT,
        env={**os.environ, "LOG_LEVEL": "verbose"},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0
    assert "Traceback" not in done.stderr
    warning, up = (json.loads(line) for line in done.stderr.splitlines())
    assert warning["severity"] == "WARNING"
    assert "$LOG_LEVEL=verbose" in warning["msg"] and "DEBUG, INFO, WARNING" in warning["msg"]
    assert "logging at INFO instead" in warning["msg"]
    assert up["msg"] == "up"


@pytest.mark.parametrize("how", ["environ", "hide"])
def test_a_secret_json_escapes_is_kept_out_of_every_line(how: str) -> None:
    secret = 'hidden"key\\with-é-0042'
    stream = io.StringIO()
    environ = {"ANTHROPIC_API_KEY": secret} if how == "environ" else {}
    logs.configure(environ, stream=stream)
    if how == "hide":
        logs.hide(secret)
    try:
        logs.get_logger("test").warning("upstream said %s", secret, extra={"detail": secret})
    finally:
        logs.configure()

    line = stream.getvalue()
    assert json.loads(line)["msg"] == "upstream said [redacted]"
    assert json.loads(line)["detail"] == "[redacted]"
