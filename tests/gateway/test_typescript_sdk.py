"""The official TypeScript SDK (latest, under Node) against the gateway, as a JS client uses it.

The SDK is installed with npm into a cache folder on first run; without node or npm (or with no
way to reach the registry) the test is skipped, saying why.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from emulator.process import FunctionProcess, start_function
from tests.gateway.node_sdk import run_check

pytestmark = pytest.mark.processes  # one worker for the module's processes


@pytest.fixture(scope="module")
def gateway() -> Iterator[FunctionProcess]:
    process = start_function("gateway", env={"WORKERS": "1"})
    yield process
    process.stop()


def test_the_typescript_sdk_speaks_to_the_gateway(gateway: FunctionProcess) -> None:
    out = run_check("ts-sdk", "@anthropic-ai/sdk", "sdk_check.mjs", gateway.url)

    assert "17 * (3 + 4) = 119" in out["text"]
    assert out["requestId"]  # the SDK read the gateway's request-id header
    assert "2 + 2 = 4" in out["streamed"] and out["deltas"] >= 1
    assert out["count"]["input_tokens"] > 0
    assert out["error"] == {"status": 404, "type": "not_found_error", "name": "NotFoundError"}
    assert "local" in out["models"]
