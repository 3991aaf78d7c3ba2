"""Issue 21, L1: the local-access guard image (ovms-launcher/local-access:dev) run with the role's own
hardening (read from roles/ovms_server/tasks/local_access.yml: root, every capability dropped but
NET_ADMIN and NET_RAW, read-only root, a /tmp tmpfs, no-new-privileges) with each iptables backend. It
runs in a network namespace of its own (--network none) instead of the host's, so this machine's
firewall is not touched: the rule appears at start, comes back within the interval after it is
deleted, and the guard stops at once on SIGTERM (exit 0). On a real host: the engine-restart test of
tests/multihost/test_reliability_faults.py."""

from __future__ import annotations

import shlex
import time
import uuid
from collections.abc import Iterator

import pytest
import yaml

from testbed import dockerutil
from testbed.paths import PROJECT_ROOT

pytestmark = [pytest.mark.contract]

IMAGE = "ovms-launcher/local-access:dev"
LABEL = "ovms-launcher-test=local-access-guard"
BRIDGE, NETWORK = "br-0123456789ab", "ovms-test-net"


def role_options() -> list[str]:
    """`docker run` options of the role's guard task, but its network."""
    tasks = yaml.safe_load((PROJECT_ROOT / "roles/ovms_server/tasks/local_access.yml").read_text())
    containers = [t.get("community.docker.docker_container", {}) for t in tasks]
    [task] = [c for c in containers if c.get("image")]
    options = ["--user", task["user"], "--network", "none"]
    options += ["--read-only"] if task["read_only"] else []
    options += [f"--tmpfs={t}" for t in task["tmpfs"]]
    options += [f"--cap-drop={c}" for c in task["cap_drop"]] + [
        f"--cap-add={c}" for c in task["capabilities"]
    ]
    options += [f"--security-opt={o}" for o in task["security_opts"]]
    return options


@pytest.fixture
def container() -> Iterator[str]:
    if not dockerutil.engine_available():
        pytest.skip("no Docker engine")
    if not dockerutil.image_exists(IMAGE):
        pytest.skip(f"image {IMAGE} missing: launcher images build local-access")
    name = f"ovms-test-guard-{uuid.uuid4().hex[:8]}"
    yield name
    dockerutil.docker("rm", "-f", name, check=False)


def rules(name: str, iptables: str) -> list[str]:
    listing = dockerutil.docker("exec", name, iptables, "-S", "OUTPUT").stdout
    return [line for line in listing.splitlines() if "ovms-launcher local-access" in line]


def wait_rule(name: str, iptables: str, timeout: float) -> list[str]:
    deadline = time.monotonic() + timeout
    while not (found := rules(name, iptables)):
        if time.monotonic() > deadline:
            logs = dockerutil.docker("logs", name, check=False)
            pytest.fail(f"no rule after {timeout:.0f}s:\n{logs.stdout}{logs.stderr}")
        time.sleep(0.2)
    return found


@pytest.mark.parametrize(("backend", "iptables"), [("nft", "iptables-nft"), ("legacy", "iptables-legacy")])
def test_the_guard_applies_the_rule_puts_it_back_and_stops_on_sigterm(container, backend, iptables):
    dockerutil.docker(
        "run", "--detach", "--name", container, "--label", LABEL, *role_options(), IMAGE,
        "--backend", backend, "--interval", "1", f"{NETWORK}={BRIDGE}",
    )  # fmt: skip
    [rule] = wait_rule(container, iptables, timeout=20)
    words = shlex.split(rule)
    assert words[:4] == ["-A", "OUTPUT", "-o", BRIDGE]
    assert "! --uid-owner 0" in rule and f'--comment "ovms-launcher local-access {NETWORK}"' in rule
    assert "-j REJECT" in rule

    dockerutil.docker("exec", container, iptables, "-D", "OUTPUT", *words[2:])
    assert rules(container, iptables) == []
    assert wait_rule(container, iptables, timeout=10) == [rule]

    started = time.monotonic()
    dockerutil.docker("stop", "--time", "20", container)
    assert time.monotonic() - started < 10, "the guard ignored SIGTERM (PID 1 needs its own handler)"
    state = dockerutil.docker("inspect", "--format", "{{.State.ExitCode}}", container).stdout.strip()
    assert state == "0"
    logs = dockerutil.docker("logs", container).stdout
    assert logs.count(f"added the rule of {NETWORK} on {BRIDGE}") == 2, logs
