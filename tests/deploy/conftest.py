"""The bundles' proof runs only under `make test-deploy` (AGENTORCH_DEPLOY_TEST=1).

It builds virtual environments from each bundle's requirements.txt, so plain `make test` skips
this folder (as it skips tests/docker/). The bundles, their venvs and their servers are built
once a session, for every module here. The time each phase took is printed at the end.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from emulator.package import Bundle, package
from tests.deploy import bundles, proof
from tests.deploy.bundles import PHASES
from tests.deploy.proof import FUNCTIONS, ROOT, TAVILY_KEY
from tests.fakes.tavily_server import FakeTavily

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


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Bundle]:
    with bundles.timed("package every function"):
        made = package(ROOT, out=tmp_path_factory.mktemp("dist"))
    return {bundle.name: bundle for bundle in made}


@pytest.fixture(scope="session")
def venvs(built: dict[str, Bundle], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("venvs")
    with bundles.timed(f"venvs from the bundles' requirements.txt ({len(built)} bundles)"):
        return bundles.make_venvs(built, folder)


@pytest.fixture(scope="session")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("home")


@pytest.fixture(scope="session")
def tavily() -> Iterator[FakeTavily]:
    with FakeTavily(api_key=TAVILY_KEY) as server:
        yield server


@pytest.fixture(scope="session")
def servers(
    built: dict[str, Bundle], venvs: dict[str, Path], home: Path, tavily: FakeTavily
) -> Iterator[dict[str, bundles.Running]]:
    """Every bundle started at once, each from its own folder with its own venv."""
    envs = proof.environments(bundles.ports(list(built)), tavily)
    started: dict[str, bundles.Running] = {}
    try:
        with bundles.timed("start every bundle, until each answers /health"):
            for name, bundle in built.items():
                target = FUNCTIONS[name].target
                started[name] = bundles.start(bundle, target, venvs[name], home, envs[name])
            for running in started.values():
                bundles.wait_ready(running)
        yield started
    finally:
        for running in started.values():
            running.stop()
