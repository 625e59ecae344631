"""Heavy libraries the tests use, loaded when a test first touches them, not at collection.

Every xdist worker imports every test module to collect it (``make test``). The anthropic SDK
alone costs 3-4 s of CPU to import (a thousand pydantic models), openai's 1.6 s: imported
plainly at the top of the modules that use them, each worker paid that before its first test,
though most never run one. ``from tests.lazy_imports import anthropic`` (or ``openai``) binds a
stand-in that imports the module when a test first reads from it. Their types go under
``TYPE_CHECKING`` (a plain ``import anthropic`` or ``from anthropic... import`` at module level
loads it at once); other heavy libraries (the Agents SDK, langchain, moto, cfn-lint) are
imported where they are used. tests/conftest.py runs all of tests/gateway/ on one worker, so
that one worker pays for them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any


class OnFirstUse:
    """Stands for module ``name`` until a test reads one of its public attributes; then imports
    it (once: Python keeps it) and answers from it.

    Not a module in ``sys.modules``, so ``import anthropic`` elsewhere is a plain import. Names
    starting with ``_`` are never looked up in the module: pytest and its plugins probe every
    object of a test module for such attributes (``__test__``, fixture markers) while they
    collect, and a probe must not import the module."""

    __test__ = False

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attribute: str) -> Any:
        if attribute.startswith("_"):
            raise AttributeError(attribute)
        return getattr(importlib.import_module(self._name), attribute)

    def __repr__(self) -> str:
        return f"<{self._name}, imported on first use>"


if TYPE_CHECKING:
    import anthropic
    import openai
else:
    anthropic = OnFirstUse("anthropic")
    openai = OnFirstUse("openai")  # 1.6 s

__all__ = ["anthropic", "openai"]
