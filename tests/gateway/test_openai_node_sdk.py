"""The OpenAI Node SDK (latest, under Node) against the gateway's OpenAI-compatible API, as a
JS client uses it: the local model answers offline.

The SDK is installed with npm into a cache folder on first run; without node or npm (or with no
way to reach the registry) the test is skipped, saying why.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.gateway.node_sdk import run_check
from tests.gateway.support import ServedGateway, module_gateway

pytestmark = pytest.mark.processes  # node and npm run as processes


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedGateway]:
    with module_gateway(tmp_path_factory.mktemp("node")) as served:
        yield served


def test_the_openai_node_sdk_speaks_to_the_gateway(gateway: ServedGateway) -> None:
    out = run_check("openai-node", "openai", "openai_check.mjs", gateway.url)

    assert "17 * (3 + 4) = 119" in out["text"] and out["finish"] == "stop"
    assert "2 + 2 = 4" in out["streamed"] and out["usage"]["total_tokens"] > 0
    assert out["toolCall"]["name"] == "calculator"
    assert "6 * 7" in json.loads(out["toolCall"]["arguments"])["expression"]
    assert out["json"] == {"n": 4}
    assert out["error"] == {"status": 404, "code": "model_not_found", "name": "NotFoundError"}
    assert "local" in out["models"]
