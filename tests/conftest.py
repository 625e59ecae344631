"""Test-wide fixtures: every test gets its own copy of os.environ."""

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
    "ORCHESTRATOR_API_KEYS",
    "ORCHESTRATOR_API_KEY",
    "OUTBOUND_AUTH",
    "GCE_METADATA_HOST",
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
    # A shell behind a proxy would switch the functions to httpx (shared/transport.py): tests
    # choose their transport (tests/shared/test_transport.py runs both).
    "OUTBOUND_TRANSPORT",
    "HTTPS_PROXY",
    "https_proxy",
    "HTTP_PROXY",
    "http_proxy",
    "ALL_PROXY",
    "all_proxy",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Modules that start processes (the ``processes`` mark) run first, each module's tests in
    their order: under xdist (``make test``) the long ones then start at once and every worker
    ends on quick in-process tests, instead of the run waiting at its end for one worker's
    late process module."""
    slow = {item.path for item in items if item.get_closest_marker("processes") is not None}
    items.sort(key=lambda item: item.path not in slow)  # stable: in-module order stays


ONE_WORKER = ("tests/gateway/",)
"""Folders whose modules run on one worker: the SDKs they share (anthropic, openai, the Agents
SDK, langchain: 10 s of CPU to import, tests/lazy_imports.py) are imported once, not by every
worker; the folder is about one worker's share of the suite."""


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """xdist's loadfile, with each of ``ONE_WORKER``'s folders one unit of work."""
    from xdist.scheduler import LoadFileScheduling

    class Scheduling(LoadFileScheduling):  # type: ignore[misc]  # xdist is untyped
        def _split_scope(self, nodeid: str) -> str:
            path = nodeid.split("::", 1)[0]
            return next((folder for folder in ONE_WORKER if path.startswith(folder)), path)

    return Scheduling(config, log)


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
