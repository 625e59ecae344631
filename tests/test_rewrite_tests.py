"""tools/rewrite_tests.py writes pytest's own assert-rewriting cache, which pytest then reads."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from emulator.compose import REPO_ROOT
from tools.rewrite_tests import rewrite, rewritten_modules

MODULE = """
def test_compares():
    left, right = 6 * 7, 41
    assert left == right
"""


def test_it_picks_the_files_pytest_rewrites(tmp_path: Path) -> None:
    for name in ("conftest.py", "test_a.py", "b_test.py", "support.py", "testing.py"):
        (tmp_path / name).write_text("")
    found = [p.name for p in rewritten_modules(tmp_path)]
    assert found == ["b_test.py", "conftest.py", "test_a.py"]


def test_pytest_runs_the_cached_module_and_explains_its_assert(tmp_path: Path) -> None:
    module = tmp_path / "test_cached.py"
    module.write_text(MODULE)
    assert rewrite(module) is True
    assert rewrite(module) is False  # current: left alone
    cached = next((tmp_path / "__pycache__").glob("test_cached.*-pytest-*.pyc"))
    written = cached.stat().st_mtime_ns
    done = subprocess.run(
        # only pytest itself: no installed package's plugin (the suite's own setting)
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
        + ["--disable-plugin-autoload", str(module)],
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO_ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "assert 42 == 41" in done.stdout, done.stdout  # the rewritten assert's explanation
    assert cached.stat().st_mtime_ns == written  # read, not rewritten again


def test_a_changed_module_is_rewritten(tmp_path: Path) -> None:
    module = tmp_path / "test_changed.py"
    module.write_text(MODULE)
    rewrite(module)
    module.write_text(MODULE.replace("41", "42"))
    assert rewrite(module) is True
