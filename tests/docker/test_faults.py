"""The `test` profile: the gateway in a container against the fakes in containers, with real
faults — 529 then 200 is retried, 529 every time falls back to Bedrock through moto."""

from __future__ import annotations

import subprocess
import sys
import time

from tests.docker.stack import FUNCTION_SERVICES, REPO_ROOT, Stack


def smoke(case: str) -> str:
    done = subprocess.run(
        [sys.executable, str(REPO_ROOT / "docker" / "smoke.py"), case],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_retry_and_fallback_against_real_faults(test_profile_stack: Stack) -> None:
    started = time.monotonic()
    test_profile_stack.compose("up", "-d", "--no-build")
    test_profile_stack.wait_healthy(FUNCTION_SERVICES)
    test_profile_stack.timed("up -d and healthy (test profile)", started)
    started = time.monotonic()
    assert "'x-gateway-provider': 'anthropic'" in smoke("gateway")
    assert "'x-gateway-attempts': '2'" in smoke("retry")
    assert "'x-gateway-provider': 'bedrock'" in smoke("fallback")
    test_profile_stack.timed("gateway, retry and fallback smoke tests", started)
