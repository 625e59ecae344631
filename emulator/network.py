"""Service DNS for processes: each service gets a loopback address and port, and every URL in
the environment that names a service (``http://model-gateway:8585``) is rewritten to it.

In Compose, services reach each other by name on the stack's network; local processes share
the host's loopback, so the emulator gives each its host port (the compose file's, or an
override) and edits the URLs before the process starts.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from emulator.compose import Service
from emulator.errors import StartFailed
from shared.errors import ConfigError

LOOPBACK = "127.0.0.1"


@dataclass(frozen=True)
class Address:
    host: str
    port: int

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def assign_addresses(
    services: Iterable[Service],
    overrides: Mapping[str, int] | None = None,
    *,
    any_port: bool = False,
) -> dict[str, Address]:
    """Each service's address: its compose port, an override, or (``any_port``) a free one."""
    overrides = dict(overrides or {})
    addresses: dict[str, Address] = {}
    for service in services:
        port = overrides.pop(service.name, None)
        if port is None:
            port = free_port() if any_port else service.port
        addresses[service.name] = Address(LOOPBACK, port)
    if overrides:
        raise ConfigError(f"--port names no service of the stack: {', '.join(overrides)}")
    taken: dict[int, str] = {}
    for name, address in addresses.items():
        if address.port in taken:
            raise ConfigError(f"{name} and {taken[address.port]} both want port {address.port}")
        taken[address.port] = name
    return addresses


def port_free(address: Address) -> bool:
    """Whether a server could listen on ``address`` now: a bind test as the server will bind
    (``SO_REUSEADDR``, as gunicorn sets it, so a previous run's closing sockets do not count)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((address.host, address.port))
        except OSError:
            return False
    return True


def require_free(addresses: Mapping[str, Address]) -> None:
    """Refuse to start when another server holds one of the ports: its health checks would
    answer for ours while our processes fail to bind. One line, naming what to do instead."""
    taken = [(name, address) for name, address in addresses.items() if not port_free(address)]
    if not taken:
        return
    name, address = taken[0]
    more = f" (and {len(taken) - 1} more of the stack's ports)" if len(taken) > 1 else ""
    raise StartFailed(
        f"{name}: port {address.port} on {address.host} is in use{more}, by another stack or "
        f"server; pass --port {name}=PORT, or --any-port for free ones "
        "(make up UP_FLAGS=--any-port)"
    )


def rewrite_urls(value: str, addresses: Mapping[str, Address]) -> str:
    """``scheme://<service>[:port]`` becomes the service's address; other hosts stay as they are."""
    if not addresses:
        return value
    names = "|".join(re.escape(name) for name in sorted(addresses, key=len, reverse=True))
    pattern = re.compile(rf"(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<name>{names})(?::\d+)?(?![\w.-])")

    def to_address(match: re.Match[str]) -> str:
        address = addresses[match.group("name")]
        return f"{match.group('scheme')}{address.host}:{address.port}"

    return pattern.sub(to_address, value)


def service_environment(service: Service, addresses: Mapping[str, Address]) -> dict[str, str]:
    """The service's own environment with service URLs rewritten and ``PORT`` set to its port."""
    environment = {k: rewrite_urls(v, addresses) for k, v in service.environment.items()}
    environment["PORT"] = str(addresses[service.name].port)
    return environment


def dns_table(
    services: Iterable[Service], addresses: Mapping[str, Address]
) -> list[tuple[str, str]]:
    """``(name as Compose sees it, address here)`` for printing."""
    return [(service.name, addresses[service.name].url) for service in services]
