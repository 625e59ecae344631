"""Every file the Dockerfile copies reaches the build: ``.dockerignore`` is a whitelist (``*``,
then ``!path`` for each thing an image needs), so a path the Dockerfile starts copying, and the
list forgets, fails only when an image is built (``functions.yaml`` did)."""

from __future__ import annotations

import fnmatch
import re
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
COPY = re.compile(r"^COPY\s+(?!--from)(?P<sources>.+?)\s+\S+\s*$", re.MULTILINE)


def copied_sources() -> list[str]:
    text = (REPO_ROOT / "Dockerfile").read_text(encoding="utf-8")
    return sorted({s for found in COPY.finditer(text) for s in found["sources"].split()})


def admitted(path: str, patterns: list[str]) -> bool:
    """Docker's rule for a whitelist: the last pattern that matches decides."""
    path = path.rstrip("/")
    verdict = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        glob = pattern.removeprefix("!").rstrip("/")
        parts = path.split("/")
        prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
        if any(fnmatch.fnmatch(prefix, glob) for prefix in prefixes):
            verdict = negated
    return verdict


def ignore_patterns() -> list[str]:
    lines = (REPO_ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


@pytest.mark.parametrize("source", copied_sources())
def test_what_the_dockerfile_copies_is_in_the_build_context(source: str) -> None:
    assert (REPO_ROOT / source).exists(), f"the Dockerfile copies {source}, which is not here"
    assert admitted(source, ignore_patterns()), f".dockerignore keeps {source} out of the build"


def test_the_whitelist_keeps_secrets_and_state_out() -> None:
    patterns = ignore_patterns()
    for path in (".env", ".venv/bin/python", "tests/orchestrator/fakes.py", ".agentorch/x"):
        assert not admitted(path, patterns), path
