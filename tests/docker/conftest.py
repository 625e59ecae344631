"""The real Docker test runs only under `make test-docker` (AGENTORCH_DOCKER_TEST=1).

`make test-docker` starts an engine and builds the images first (docker/docker-e2e.sh); plain
`make test` skips this folder. Every stack is torn down, also when a test fails, and the time
each phase took is printed at the end.
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Iterator

import pytest

from tests.docker.stack import REMOTE_AGENT, Stack

RUN = os.environ.get("AGENTORCH_DOCKER_TEST") == "1"
PHASES: list[tuple[str, float]] = []


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if RUN:
        return
    skip = pytest.mark.skip(reason="the real Docker test runs with `make test-docker`")
    for item in items:
        if "tests/docker/" in str(item.fspath).replace(os.sep, "/"):
            item.add_marker(skip)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if PHASES:
        terminalreporter.section("docker phases")
        for phase, seconds in PHASES:
            terminalreporter.write_line(f"{seconds:7.1f} s  {phase}")


def running_stack(stack: Stack) -> Iterator[Stack]:
    try:
        yield stack
    finally:
        started = time.monotonic()
        stack.down()
        stack.timed("down", started)
        PHASES.extend(stack.phases)


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    keys = f"e2e-{secrets.token_hex(8)},e2e-second-key"
    # A remote agent by one line: the calculator's container again, by its service URL.
    remote = f"{REMOTE_AGENT}=http://calculator-agent:8080"
    yield from running_stack(Stack("agentorch-e2e", api_keys=keys, agents=remote))


@pytest.fixture(scope="module")
def prod_stack() -> Iterator[Stack]:
    files = ("docker-compose.yml", "docker-compose.prod.yml")
    yield from running_stack(Stack("agentorch-e2e-prod", files))


@pytest.fixture(scope="module")
def test_profile_stack() -> Iterator[Stack]:
    yield from running_stack(Stack("agentorch-e2e-faults", env_file="docker/test.env"))
