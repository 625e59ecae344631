"""Load the tiny functions under ``tests/shared/functions/`` the way functions-framework does."""

from __future__ import annotations

from pathlib import Path

from starlette.testclient import TestClient

from shared.entry import function_app

FUNCTIONS_DIR = Path(__file__).parent / "functions"


def function_client(scenario: str, target: str) -> TestClient:
    """An in-process client of the scenario's ASGI app (functions-framework's Starlette app)."""
    source = FUNCTIONS_DIR / scenario / "main.py"
    return TestClient(function_app(str(source), target))
