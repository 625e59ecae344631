"""A function with no extra gets the core's pins in its bundle, resolved by tools/requirements.py
inside the lock (uv, so here rather than in `make test`)."""

from __future__ import annotations

from pathlib import Path

from emulator.package import requirements
from shared.manifest import load_manifest
from tests.deploy.bundles import pins_of

ROOT = Path(__file__).resolve().parents[2]


def test_a_function_without_an_extra_gets_the_core_pins(tmp_path: Path) -> None:
    calculator = load_manifest(ROOT / "functions.yaml").function("calculator")
    # The calculator's extra is empty (pyproject.toml): its pins are the core's.
    core = tmp_path / "core.txt"
    core.write_text(requirements(ROOT, calculator.model_copy(update={"extra": None})))
    assert "[project] dependencies alone" in core.read_text()
    assert pins_of(core) == pins_of(ROOT / calculator.source / "requirements.txt")
