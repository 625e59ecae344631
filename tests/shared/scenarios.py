"""Load the tiny functions under ``tests/shared/functions/`` the way functions-framework does."""

from __future__ import annotations

from pathlib import Path

import functions_framework
from flask import Flask
from flask.testing import FlaskClient

FUNCTIONS_DIR = Path(__file__).parent / "functions"


def function_client(scenario: str, target: str) -> FlaskClient:
    source = FUNCTIONS_DIR / scenario / "main.py"
    app: Flask = functions_framework.create_app(target, str(source))  # type: ignore[no-untyped-call]
    return app.test_client()
