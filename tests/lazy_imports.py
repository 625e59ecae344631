"""Heavy libraries the tests use, loaded when a test first touches them, not at collection.

Every xdist worker imports every test module to collect it (``make test``). The anthropic SDK
alone costs 3-4 s of CPU to import (a thousand pydantic models), openai's 1.6 s: imported
plainly at the top of the modules that use them, each worker paid that before its first test,
though most never run one. ``from tests.lazy_imports import anthropic`` (or ``openai``) binds a
module that loads on first attribute access. Their types go under ``TYPE_CHECKING`` (a plain
``import anthropic`` or ``from anthropic... import`` at module level loads it at once); other
heavy libraries (the Agents SDK, langchain, moto, cfn-lint) are imported where they are used.
"""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType
from typing import TYPE_CHECKING


def load_on_first_use(name: str) -> ModuleType:
    """Module ``name``, executed when one of its attributes is first read."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None:
        raise ModuleNotFoundError(name)
    spec.loader = importlib.util.LazyLoader(spec.loader)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


if TYPE_CHECKING:
    import anthropic
    import openai
else:
    anthropic = load_on_first_use("anthropic")
    openai = load_on_first_use("openai")  # 1.6 s

__all__ = ["anthropic", "openai"]
