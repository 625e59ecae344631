"""The bundles' proof runs only under `make test-deploy` (AGENTORCH_DEPLOY_TEST=1).

It builds virtual environments from each bundle's requirements.txt, so plain `make test` skips
this folder (as it skips tests/docker/). The time each phase took is printed at the end.
"""

from __future__ import annotations

import os

import pytest

from tests.deploy.bundles import PHASES

RUN = os.environ.get("AGENTORCH_DEPLOY_TEST") == "1"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if RUN:
        return
    skip = pytest.mark.skip(reason="the bundles' proof runs with `make test-deploy`")
    for item in items:
        if "tests/deploy/" in str(item.fspath).replace(os.sep, "/"):
            item.add_marker(skip)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if PHASES:
        terminalreporter.section("deploy phases")
        for phase, seconds in PHASES:
            terminalreporter.write_line(f"{seconds:7.1f} s  {phase}")
