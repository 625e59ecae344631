"""The orchestrator's logging set-up: LOG_LEVEL wins, its gateway key is never written. (What
it logs per run is shown served, in test_process.py.)"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from functions.orchestrator.service import build_service
from shared import logs
from shared.errors import ConfigError
from shared.redact import MARKER

Logged = Callable[[], list[dict[str, Any]]]
GATEWAY = {"GATEWAY_URL": "http://gateway.invalid"}


@pytest.fixture
def root_level() -> Iterator[logging.Logger]:
    root = logging.getLogger(logs.ROOT_LOGGER)
    saved = root.level
    yield root
    root.setLevel(saved)


def test_log_level_from_the_environment_wins_over_the_file(root_level: logging.Logger) -> None:
    root_level.setLevel(logging.WARNING)  # as shared.logs set it from $LOG_LEVEL
    build_service({**GATEWAY, "LOG_LEVEL": "warning"})
    assert root_level.level == logging.WARNING  # orchestrator.yaml says INFO
    build_service(GATEWAY)
    assert root_level.level == logging.INFO  # without $LOG_LEVEL, the file's


def test_the_gateway_key_is_never_in_a_line(logged: Logged) -> None:
    key = 'gk-"0123456789'  # a quote: JSON-escaped in the line
    build_service({**GATEWAY, "GATEWAY_API_KEY": key})
    log = logs.get_logger("orchestrator.test")
    log.warning(f"the model gateway answered 401: bad key {key}", extra={"echo": key})
    try:
        raise ValueError(key)
    except ValueError:
        log.exception("failed")
    text = str(logged())
    assert key not in text and "0123456789" not in text
    assert logged()[0]["msg"] == f"the model gateway answered 401: bad key {MARKER}"


def test_its_outbound_transport_is_the_given_environments() -> None:
    # Not os.environ's (where OUTBOUND_TRANSPORT is unset): the bad value must be seen.
    with pytest.raises(ConfigError, match="OUTBOUND_TRANSPORT"):
        build_service({**GATEWAY, "OUTBOUND_TRANSPORT": "pigeon"})
