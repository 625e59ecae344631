"""A function with no extra gets the core's pins in its bundle, resolved by tools/requirements.py
inside the lock (uv, so here rather than in `make test`)."""

from __future__ import annotations

from pathlib import Path

from emulator.package import requirements
from shared.manifest import load_manifest
from tests.deploy.bundles import pins_of

ROOT = Path(__file__).resolve().parents[2]
CORE = ("functions-framework==", "pydantic==", "uvicorn==", "httptools==", "opentelemetry-sdk==")
"""Some of ``[project] dependencies`` (pyproject.toml), pinned."""


def test_a_function_without_an_extra_gets_the_core_pins(tmp_path: Path) -> None:
    # Every function has an extra now (the agents' brings the mcp SDK): one is taken away.
    manifest = load_manifest(ROOT / "functions.yaml")
    core = tmp_path / "core.txt"
    core.write_text(
        requirements(ROOT, manifest.function("calculator").model_copy(update={"extra": None}))
    )
    assert "[project] dependencies alone" in core.read_text()
    core_pins = set(pins_of(core).splitlines())
    for name in CORE:
        assert any(pin.startswith(name) for pin in core_pins), name
    assert not any(pin.startswith("mcp==") for pin in core_pins)  # the agents' extra, not core
    for function in manifest.functions:  # the core is in every function's bundle, as pinned
        pins = set(pins_of(ROOT / function.source / "requirements.txt").splitlines())
        assert core_pins <= pins, (function.name, sorted(core_pins - pins))
