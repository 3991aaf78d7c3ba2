"""Secrets on the real three-host harness: private keys never show up in output or artifacts, sit
with mode 0600 only where they belong, the CA key never leaves the controller, and certificates and
models are mounted read-only into the containers.

One deployment for the whole module (the `remote` fixture of test_remote_e2e.py, imported, so this
module gets its own instance with its own certificates and runs folders): `launcher certs generate`,
then `launcher deploy --diff` (with --diff a `copy` task would print a changed file's content: the
roles must hide the key copies with `no_log`), then `launcher status`; destroyed at the end in the
fixture's finally. It does not depend on what test_remote_e2e.py left on the hosts.

What is searched on each host (over SSH, as root): every file under `/` except /proc, /sys and /dev
(virtual filesystems), read as text (`grep -a`, devices, FIFOs and sockets skipped, symlinks not
followed), for the base64 body lines of every private key of the PKI. That includes /var/lib/docker
(image layers, the containers' writable layers and their mounted overlay views) and /root/.ansible.
"""

from __future__ import annotations

import re
import shlex
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from multihost.test_remote_e2e import (  # noqa: F401  (`remote` is a fixture, requested by name)
    CLIENT1,
    CLIENT2,
    CLIENT_CONTAINER,
    DEPLOY,
    MONITORING_HOST,
    PROXY_CONTAINER,
    SERVER,
    SERVER_CONTAINER,
    Remote,
    remote,
)
from testbed import remote as rm
from testbed.harness import Host
from testbed.launcher_cli import LauncherRun
from testbed.paths import PROJECT_ROOT

pytestmark = [pytest.mark.reliability]

SERVER_DATA = "/var/lib/ovms-launcher/server"
PEM_KEY = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----\n(.+?)\n-----END", re.DOTALL)
# Everything under / except the kernel's virtual filesystems.
SEARCH_EXCLUDED = ("/proc", "/sys", "/dev")
# owner uid:gid of each deployed key: root's, readable by the container's group (issue 21 L5: tls proxy
# 5001, client 5002), so a host account with the container's uid cannot read or replace it
# With the monitoring on (test_remote_e2e's inventory): Prometheus's copy of the monitoring host's
# client key (its image's group 5005), each client host's gateway key (the tls-proxy image's group 5001).
MONITORING_KEY = "/var/lib/ovms-launcher/monitoring/tls/client.key"
GATEWAY_KEY = f"{rm.CLIENT_DATA}/monitoring-tls/server.key"
KEY_OWNERS = {
    f"{SERVER_DATA}/tls/server.key": "0:5001",
    f"{rm.CLIENT_DATA}/tls/client.key": "0:5002",
    MONITORING_KEY: "0:5005",
    GATEWAY_KEY: "0:5001",
}
# container -> folders mounted from the host that must be read-only ("/" = the container's root)
READ_ONLY = {
    SERVER_CONTAINER: (SERVER, ("/models", "/config", "/")),
    PROXY_CONTAINER: (SERVER, ("/etc/ovms-tls", "/etc/nginx/conf.d", "/")),
    CLIENT_CONTAINER: (CLIENT1, ("/tls", "/profile", "/media", "/")),
}


@dataclass
class Secret:
    """One private key of the PKI: where it is on the controller and the lines that identify it."""

    name: str  # e.g. "ca", "servers/host1"
    path: Path
    body: str  # base64 body without newlines

    @property
    def lines(self) -> list[str]:
        text = self.body
        return [text[i : i + 64] for i in range(0, len(text), 64) if len(text[i : i + 64]) >= 32]


@dataclass
class Deployed:
    remote: Remote
    secrets: list[Secret]
    runs: list[LauncherRun] = field(default_factory=list)

    @property
    def ca(self) -> Secret:
        return next(s for s in self.secrets if s.name == "ca")

    def leaks(self, text: str) -> list[str]:
        found = ["a PEM 'PRIVATE KEY' block"] if "PRIVATE KEY-----" in text else []
        for secret in self.secrets:
            if secret.body in text or any(line in text for line in secret.lines):
                found.append(f"the key {secret.name} ({secret.path})")
        return found


def _secrets(certs: Path) -> list[Secret]:
    found = []
    for path in sorted(certs.rglob("*.key")):
        match = PEM_KEY.search(path.read_text())
        assert match, f"{path} is not a PEM private key"
        relative = path.relative_to(certs)
        name = "ca" if relative.parts[0] == "ca" else f"{relative.parts[0]}/{relative.parts[1]}"
        found.append(Secret(name, path, match.group(1).replace("\n", "")))
    return found


@pytest.fixture(scope="module")
def deployed(request: pytest.FixtureRequest) -> Iterator[Deployed]:
    state: Remote = request.getfixturevalue("remote")
    launcher = state.launcher
    try:
        generated = launcher.ok(["certs", "generate", "-i", str(state.inventory), "--dir", str(state.certs)])
        result = Deployed(state, _secrets(state.certs), [generated])
        assert {"ca", f"servers/{SERVER}", f"clients/{CLIENT1}", f"clients/{CLIENT2}"} <= {
            s.name for s in result.secrets
        }
        deploy = launcher.run(["deploy", "-i", str(state.inventory), *DEPLOY, "--diff"])
        result.runs.append(deploy)
        assert deploy.returncode == 0, deploy.describe() + "\n" + rm.diagnostics(state.harness.hosts)
        result.runs.append(launcher.ok(["status", "-i", str(state.inventory), "--json"]))
        yield result
    finally:
        destroyed = launcher.run(["destroy", "-i", str(state.inventory), "--json"])
        state.destroyed = destroyed.returncode == 0


def _host_files(host: Host, patterns: list[str]) -> dict[str, set[str]]:
    """path -> matched patterns, for every file on the host holding one of `patterns`."""
    excluded = " ".join(f"-e {d}" for d in SEARCH_EXCLUDED)
    wanted = " ".join(f"-e {shlex.quote(p)}" for p in patterns)
    command = f"cd / && LC_ALL=C grep -rsoaF -D skip {wanted} -- $(ls -d /* | grep -vxF {excluded}); true"
    proc = host.ssh.run(command, timeout=900)
    found: dict[str, set[str]] = {}
    for line in proc.stdout.splitlines():
        path, _, match = line.rpartition(":")
        if path:
            found.setdefault(path, set()).add(match)
    return found


def _stat(host: Host, paths: list[str]) -> dict[str, tuple[str, str]]:
    """path -> (octal mode, owner uid:gid)."""
    proc = host.ssh.run(["stat", "-c", "%a %u:%g %n", *paths])
    out = {}
    for line in proc.stdout.splitlines():
        mode, uid, path = line.split(" ", 2)
        out[path] = (mode, uid)
    return out


def test_key_copies_are_hidden_with_no_log():
    """Every task that copies TLS files to a host (their loop holds the private key) has no_log."""
    found = []
    for path in sorted((PROJECT_ROOT / "roles").glob("*/tasks/*.yml")):
        for task in yaml.safe_load(path.read_text()) or []:
            text = yaml.safe_dump(task)
            if "ansible.builtin.copy" in task and re.search(r"tls(_proxy)?_sources", text):
                found.append(path.name)
                assert task.get("no_log") is True, f"{path}: {task.get('name')!r} copies keys without no_log"
    assert len(found) >= 2, f"expected the proxy's and the client's key copy tasks, found {found}"


def test_no_private_key_in_launcher_output(deployed: Deployed):
    for run in deployed.runs:
        leaks = deployed.leaks(run.stdout + run.stderr)
        assert not leaks, f"`launcher {' '.join(run.args[:3])}` printed {leaks}"


def test_no_private_key_in_ansible_output_or_runner_artifacts(deployed: Deployed):
    runs_dir = deployed.remote.workdir / "runs"
    files = [p for p in runs_dir.rglob("*") if p.is_file()]
    stdout = [p for p in files if p.name == "stdout"]
    assert stdout, f"no ansible stdout among the artifacts under {runs_dir}"
    events = [p for p in files if p.parent.name == "job_events"]
    assert events, f"no runner job events under {runs_dir}"
    # the deploy's events include the key copy tasks (by name), whose results must be censored
    copy_events = [p for p in events if "certificate, key" in p.read_text(errors="replace")]
    assert copy_events, "no job event of the certificate copy tasks: the check would prove nothing"
    leaking = {str(p.relative_to(runs_dir)): deployed.leaks(p.read_text(errors="replace")) for p in files}
    assert not {k: v for k, v in leaking.items() if v}, leaking


@pytest.fixture(scope="module")
def keys_on_hosts(deployed: Deployed) -> dict[str, dict[str, str]]:
    """host -> {path: name of the PKI key whose content the file holds}, for every file on the host
    that holds any private key of the PKI (one filesystem search per host, the hosts in parallel)."""
    patterns = [line for s in deployed.secrets for line in s.lines]

    def search(host: Host) -> dict[str, str]:
        found = _host_files(host, patterns)
        return {
            path: next(s.name for s in deployed.secrets if matches & set(s.lines))
            for path, matches in found.items()
        }

    hosts = deployed.remote.harness.hosts
    with ThreadPoolExecutor(len(hosts)) as pool:
        return dict(zip([h.name for h in hosts], pool.map(search, hosts), strict=True))


def test_key_files_are_0640_root_and_only_where_they_belong(deployed: Deployed, keys_on_hosts):
    expected = {
        SERVER: {f"{SERVER_DATA}/tls/server.key": f"servers/{SERVER}"},
        CLIENT1: {
            f"{rm.CLIENT_DATA}/tls/client.key": f"clients/{CLIENT1}",
            GATEWAY_KEY: f"servers/{CLIENT1}",
        },
        CLIENT2: {
            f"{rm.CLIENT_DATA}/tls/client.key": f"clients/{CLIENT2}",
            GATEWAY_KEY: f"servers/{CLIENT2}",
            MONITORING_KEY: f"clients/{CLIENT2}",
        },
    }
    assert MONITORING_HOST == CLIENT2
    for host in deployed.remote.harness.hosts:
        found = {path: name for path, name in keys_on_hosts[host.name].items() if name != "ca"}
        assert found == expected[host.name], f"{host.name}: private keys found at {found}"
        for path, (mode, uid) in _stat(host, sorted(found)).items():
            assert mode == "640", f"{host.name}:{path} has mode {mode}"
            assert uid == KEY_OWNERS[path], f"{host.name}:{path} is owned by {uid}"


def test_ca_key_is_on_no_host(deployed: Deployed, keys_on_hosts):
    assert deployed.ca.path.is_file()  # it stays on the controller
    assert len(keys_on_hosts) == 3 and all(keys_on_hosts.values()), "the search found nothing at all"
    for host, found in keys_on_hosts.items():
        copies = sorted(path for path, name in found.items() if name == "ca")
        assert not copies, f"the CA key's content is on {host}: {copies}"


@pytest.mark.parametrize("name", list(READ_ONLY))
def test_certificates_and_models_are_mounted_read_only(deployed: Deployed, name: str):
    host_name, targets = READ_ONLY[name]
    host = deployed.remote.harness.host(host_name)
    info = rm.container(host, name)
    assert info and info["State"]["Running"], f"{name} is not running on {host_name}"
    assert info["HostConfig"]["ReadonlyRootfs"] is True
    mounts = {m["Destination"]: m for m in info["Mounts"]}
    for target in targets:
        if target != "/":
            assert target in mounts, f"{name} mounts nothing at {target}: {sorted(mounts)}"
            assert mounts[target]["RW"] is False, f"{name}: {target} is mounted read-write"
        probe = f"{target.rstrip('/')}/.write-probe"
        # the container's user (it owns the certificate folders): refused by the read-only mount
        own = _write(host, name, probe)
        assert own.returncode != 0, f"{name}: its own user could write {probe}"
        assert "Read-only file system" in own.stderr, f"{name}: {probe} refused otherwise: {own.stderr}"
        # root inside the container (no capabilities): refused too, by the mount or by the folder's mode
        root = _write(host, name, probe, user="0")
        assert root.returncode != 0, f"{name}: root in the container could write {probe}"
        assert re.search(r"Read-only file system|Permission denied", root.stderr), root.stderr


def _write(host: Host, container: str, path: str, user: str | None = None) -> subprocess.CompletedProcess:
    """Try to create `path` inside the container (removed again should it work)."""
    as_user = ["--user", user] if user else []
    proc = host.ssh.run(["docker", "exec", *as_user, container, "sh", "-c", f": > {path}"], check=False)
    if proc.returncode == 0:
        host.ssh.run(["docker", "exec", "--user", "0", container, "rm", "-f", path], check=False)
    return proc
