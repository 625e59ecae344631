"""Rewrite the test modules' asserts once, before pytest's workers start (``make test``).

pytest rewrites each test module's ``assert`` statements when it imports it, and caches the
result beside it (``__pycache__/*-pytest-*.pyc``). In a fresh checkout there is no cache, and
every pytest-xdist worker imports every test module to collect the suite, so each of them
rewrote all of them at once: ~4 s of CPU per worker (bench/RESULTS.md, "Test suite wall
time"). This writes the same cache in one pass over the files pytest would rewrite, split over
the cores, so the workers only read it; a module whose cache is current is skipped.

The cache is pytest's: the same rewriting (``rewrite_asserts``), file names and header
(``_write_pyc_fp``), checked by pytest against each source's hash when it loads one. Those are
pytest's internals: if they move, this says so and does nothing, and pytest rewrites as before.

    python -m tools.rewrite_tests [FOLDER]   (default: tests)
"""

from __future__ import annotations

import ast
import importlib.util
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path


def rewritten_modules(folder: Path) -> list[Path]:
    """What pytest rewrites there: conftest.py and modules named as tests (its defaults)."""
    found = [
        path
        for path in folder.rglob("*.py")
        if path.name == "conftest.py"
        or path.name.startswith("test_")
        or path.stem.endswith("_test")
    ]
    return sorted(found)


def rewrite(path: Path) -> bool:
    """Write ``path``'s rewritten module to pytest's cache unless it is current there; whether
    it was written."""
    from _pytest.assertion.rewrite import (
        PYC_TAIL,
        _read_pyc,
        _write_pyc_fp,
        get_cache_dir,
        rewrite_asserts,
    )

    pyc = get_cache_dir(path) / (path.name[:-3] + PYC_TAIL)
    if _read_pyc(path, pyc) is not None:
        return False
    source = path.read_bytes()
    tree = ast.parse(source, filename=str(path))
    rewrite_asserts(tree, source, str(path), None)  # None: the ini's default (no pass hook)
    code = compile(tree, str(path), "exec", dont_inherit=True)
    pyc.parent.mkdir(exist_ok=True)
    partial = pyc.with_name(f"{pyc.name}.{os.getpid()}")
    with partial.open("wb") as out:
        _write_pyc_fp(out, importlib.util.source_hash(source), code)
    partial.replace(pyc)  # atomic: a reader sees the old cache or the whole new one
    return True


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    folder = Path(args[0] if args else "tests")
    try:
        import _pytest.assertion.rewrite as internals

        for name in ("PYC_TAIL", "_read_pyc", "_write_pyc_fp", "get_cache_dir", "rewrite_asserts"):
            getattr(internals, name)
    except (ImportError, AttributeError) as exc:
        print(f"rewrite_tests: skipped, pytest's rewriting moved ({exc})", file=sys.stderr)
        return 0
    modules = rewritten_modules(folder)
    with ProcessPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        written = sum(pool.map(rewrite, modules, chunksize=8))
    print(f"rewrite_tests: {written} of {len(modules)} test modules rewritten")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
