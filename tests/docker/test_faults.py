"""The `test` profile: the gateway in a container against the fakes in containers, with real
faults — 529 then 200 is retried, 529 every time falls back to Bedrock through moto."""

from __future__ import annotations

import time

from tests.docker.stack import FUNCTION_SERVICES, Stack


def smoke(stack: Stack, case: str) -> str:
    """docker/smoke.py in the interactive image, reaching the services by name (as make does)."""
    done = stack.compose(
        "--profile", "interactive", "run", "--rm", "-T", "--no-deps", "--entrypoint", "python",
        "interactive-test", "docker/smoke.py", case, timeout_s=120,
    )  # fmt: skip
    return done.stdout


def test_retry_and_fallback_against_real_faults(test_profile_stack: Stack) -> None:
    started = time.monotonic()
    test_profile_stack.compose("up", "-d", "--no-build")
    test_profile_stack.wait_healthy(FUNCTION_SERVICES)
    test_profile_stack.timed("up -d and healthy (test profile)", started)
    started = time.monotonic()
    assert "'x-gateway-provider': 'anthropic'" in smoke(test_profile_stack, "gateway")
    assert "'x-gateway-attempts': '2'" in smoke(test_profile_stack, "retry")
    assert "'x-gateway-provider': 'bedrock'" in smoke(test_profile_stack, "fallback")
    test_profile_stack.timed("gateway, retry and fallback smoke tests", started)
