"""Take a harness host off its network and bring it back: an "unreachable host" the way a pulled cable
or a dead switch port makes one. The host keeps running (its engine, its containers, its data); only
its link to the controller and the other hosts goes, then returns with the same address."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from testbed.dockerutil import DockerError, docker
from testbed.harness import Harness, Host

BACK_TIMEOUT_S = 60.0


def attached(harness: Harness, host: Host) -> bool:
    """Whether the host's container is on the harness network."""
    proc = docker("inspect", "--format", "{{json .NetworkSettings.Networks}}", host.container)
    return f'"{harness.network}"' in proc.stdout


def answers_ssh(host: Host, timeout: float = 15) -> bool:
    return host.ssh.run(["true"], check=False, timeout=timeout).returncode == 0


def reconnect(harness: Harness, host: Host) -> None:
    """Put the host back on the harness network at its own address and wait (bounded) until it answers
    over SSH again."""
    if not attached(harness, host):
        docker("network", "connect", "--ip", host.ip, harness.network, host.container)
    deadline = time.monotonic() + BACK_TIMEOUT_S
    while not answers_ssh(host):
        if time.monotonic() > deadline:
            raise DockerError(
                f"{host.name} ({host.ip}) does not answer over SSH {BACK_TIMEOUT_S:.0f}s after reconnecting"
            )
        time.sleep(1)


@contextmanager
def unreachable(harness: Harness, host: Host) -> Iterator[None]:
    """The host is off the network inside the block (checked: SSH to it fails); always back after it."""
    docker("network", "disconnect", harness.network, host.container)
    try:
        if answers_ssh(host, timeout=20):
            raise DockerError(f"{host.name} still answers over SSH after leaving {harness.network}")
        yield
    finally:
        reconnect(harness, host)
