"""Test-wide fixtures (every test gets its own copy of os.environ) and the markers' meaning.

``make test`` runs the suite on several xdist workers with ``--dist loadgroup``: a test marked
``processes`` (it starts function processes or other programs) runs on the same worker as the
rest of its module, so a module-scoped process starts once and its tests do not race each
other for it. tests/README.md has the rest.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from shared import logs

_PROVIDER_VARIABLES = (
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_BASE_URL",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
    "AWS_ENDPOINT_URL_BEDROCK_RUNTIME",
    "TAVILY_API_KEY",
    "TAVILY_BASE_URL",
    "GATEWAY_API_KEYS",
    "GATEWAY_API_KEY",
    # Where a user's shell may point at a running stack: tests name their own services.
    "GATEWAY_URL",
    "CALCULATOR_URL",
    "SEARCH_URL",
    "DATA_PROCESSOR_URL",
    "TAVILY_URL",
    "K_SINK",
    "ORCHESTRATOR_URL",
    "ORCHESTRATOR_CONFIG",
    "AGENTORCH_STATE_DIR",
    "AGENTORCH_INSTANCE",
)


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A ``processes`` test without an ``xdist_group`` of its own is grouped by its module."""
    for item in items:
        if item.get_closest_marker("processes") and not item.get_closest_marker("xdist_group"):
            item.add_marker(pytest.mark.xdist_group(item.nodeid.split("::", 1)[0]))


@pytest.fixture(autouse=True)
def isolated_environ(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Restore os.environ after each test and start with no real credentials in it."""
    saved = dict(os.environ)
    for name in _PROVIDER_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    yield
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture
def logged() -> Iterator[Callable[[], list[dict[str, Any]]]]:
    """The JSON lines the ``agentorch`` loggers write during the test, at DEBUG, parsed."""
    stream = io.StringIO()
    logs.configure({"LOG_LEVEL": "debug"}, stream=stream)
    yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    logs.configure()  # back to stderr at the process's LOG_LEVEL
