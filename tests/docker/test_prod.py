"""The stack with docker-compose.prod.yml still answers tasks, hardened as the file says."""

from __future__ import annotations

import json
import subprocess
import time

from tests.docker.stack import FUNCTION_SERVICES, Stack


def inspect(container: str) -> dict[str, object]:
    done = subprocess.run(
        ["docker", "inspect", container], capture_output=True, text=True, check=True
    )
    config: dict[str, object] = json.loads(done.stdout)[0]["HostConfig"]
    return config


def test_prod_stack_answers_with_a_read_only_unprivileged_root(prod_stack: Stack) -> None:
    started = time.monotonic()
    prod_stack.compose("--compatibility", "up", "-d", "--no-build")
    prod_stack.wait_healthy(FUNCTION_SERVICES)
    prod_stack.timed("up -d and healthy (production overrides)", started)
    for service in FUNCTION_SERVICES:  # no line about a file it could not write, all JSON
        for line in prod_stack.start_log(service):
            assert isinstance(json.loads(line), dict), f"{service}: {line}"
    for service in FUNCTION_SERVICES:
        host = inspect(prod_stack.container(service))
        assert host["ReadonlyRootfs"] is True, service
        assert host["SecurityOpt"] == ["no-new-privileges:true"], service
        assert host["CapDrop"] == ["ALL"], service
        assert host["Memory"], service  # the deploy limit reached the container
        assert host["RestartPolicy"] == {"Name": "always", "MaximumRetryCount": 0}, service
    started = time.monotonic()
    run = prod_stack.ask("What is 17 * 23?")
    prod_stack.timed("task (production overrides)", started)
    assert run["status"] == "completed", run
    assert "391" in run["answer"]
    write = prod_stack.compose(
        "exec", "-T", "model-gateway", "sh", "-c", "touch /app/x 2>&1 || echo refused"
    )
    assert "refused" in write.stdout
    # ...but the log volume is writable by the gateway's non-root user.
    assert any(line["msg"] == "upstream attempt ok" for line in prod_stack.gateway_log())
