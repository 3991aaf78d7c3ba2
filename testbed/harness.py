"""`Harness(n_hosts)`: N Docker-in-Docker "hosts" on a private labelled network, reached over SSH.

Each host is a container of `ovms-launcher-test/host:dev` with its own Docker engine (own address
ranges, own /var/lib/docker volume) and sshd letting root in with the run's generated ed25519 key.
Everything created carries the label `ovms-launcher.test=1` (plus the run's own label) and is
removed by `close()`, which is safe to call after a partial start. See docs/testing.md.
"""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from launcher.inventory import load_groups
from testbed import archives
from testbed.dockerutil import TEST_LABEL, DockerError, docker
from testbed.hostimage import HOST_IMAGE, ensure_host_image
from testbed.inventory import build_inventory, write_inventory
from testbed.keys import KeyPair, generate_key_pair
from testbed.ssh import SshTarget

SUBNET_ENV = "OVMS_TEST_MULTIHOST_SUBNET"
DEFAULT_SUBNET = "10.200.0.0/24"
RUN_LABEL = "ovms-launcher-test.harness"
READY_TIMEOUT_S = 90.0

# Every capability Docker 20.10 knows except SYS_RESOURCE, which is outside this machine's bounding
# set (`--privileged` and `--cap-add ALL` fail with "unable to apply caps"). BPF, PERFMON and
# CHECKPOINT_RESTORE are unknown to Docker 20.10 and not needed by an inner engine.
HOST_CAPABILITIES = (
    "AUDIT_CONTROL", "AUDIT_READ", "AUDIT_WRITE", "BLOCK_SUSPEND", "CHOWN", "DAC_OVERRIDE",
    "DAC_READ_SEARCH", "FOWNER", "FSETID", "IPC_LOCK", "IPC_OWNER", "KILL", "LEASE", "LINUX_IMMUTABLE",
    "MAC_ADMIN", "MAC_OVERRIDE", "MKNOD", "NET_ADMIN", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_RAW",
    "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_ADMIN", "SYS_BOOT", "SYS_CHROOT", "SYS_MODULE",
    "SYS_NICE", "SYS_PACCT", "SYS_PTRACE", "SYS_RAWIO", "SYS_TIME", "SYS_TTY_CONFIG", "SYSLOG",
    "WAKE_ALARM",
)  # fmt: skip


@dataclass(frozen=True)
class Host:
    name: str  # inventory name: host1, host2, …
    index: int
    ip: str  # address on the harness network
    container: str
    volume: str
    ssh: SshTarget

    @property
    def dockerd_bip(self) -> str:
        return f"10.201.{self.index}.1/24"

    @property
    def dockerd_pool(self) -> str:
        return f"base=10.202.{self.index}.0/24,size=28"


def _used_networks() -> list[tuple[str, ipaddress.IPv4Network]]:
    """Subnets already in use here: the outer engine's networks and the machine's routes."""
    used: list[tuple[str, ipaddress.IPv4Network]] = []
    ids = docker("network", "ls", "--quiet").stdout.split()
    if ids:
        for net in json.loads(docker("network", "inspect", *ids).stdout):
            for cfg in (net.get("IPAM") or {}).get("Config") or []:
                try:
                    used.append((f"docker network {net['Name']}", ipaddress.IPv4Network(cfg["Subnet"])))
                except (KeyError, ValueError):
                    continue
    routes = subprocess.run(["ip", "-4", "route", "show"], capture_output=True, text=True, check=False)
    for line in routes.stdout.splitlines():
        dest = line.split()[0] if line.split() else ""
        if dest and dest != "default":
            try:
                used.append((f"route {line.strip()}", ipaddress.IPv4Network(dest, strict=False)))
            except ValueError:
                continue
    return used


def check_subnet(subnet: str, n_hosts: int) -> ipaddress.IPv4Network:
    """The harness subnet: private, large enough, and overlapping nothing on this machine."""
    try:
        net = ipaddress.IPv4Network(subnet)
    except ValueError as exc:
        raise ValueError(f"{SUBNET_ENV}={subnet}: not an IPv4 network ({exc})") from exc
    private = [ipaddress.IPv4Network("10.0.0.0/8"), ipaddress.IPv4Network("172.16.0.0/12")]
    if not any(net.subnet_of(p) for p in private):
        raise ValueError(f"{SUBNET_ENV}={subnet}: choose a subnet inside 10.0.0.0/8 or 172.16.0.0/12")
    for inner in (ipaddress.IPv4Network("10.201.0.0/16"), ipaddress.IPv4Network("10.202.0.0/16")):
        if net.overlaps(inner):
            raise ValueError(f"{SUBNET_ENV}={subnet}: overlaps {inner}, which the hosts' own engines use")
    if net.num_addresses < n_hosts + 16:
        raise ValueError(f"{SUBNET_ENV}={subnet}: too small for {n_hosts} hosts")
    for what, other in _used_networks():
        if net.overlaps(other):
            raise ValueError(
                f"{SUBNET_ENV}={subnet} overlaps {other} ({what}); set {SUBNET_ENV} to a free private subnet"
            )
    return net


class Harness:
    """N hosts for multi-host tests; use as a context manager or call start()/close()."""

    def __init__(self, n_hosts: int = 3, *, subnet: str | None = None, build_log: Path | None = None) -> None:
        if n_hosts < 1:
            raise ValueError("n_hosts must be at least 1")
        self.n_hosts = n_hosts
        self.subnet = subnet or os.environ.get(SUBNET_ENV, DEFAULT_SUBNET)
        self.run_id = uuid.uuid4().hex[:8]
        self.prefix = f"ovms-mh-{self.run_id}"
        self.network = f"{self.prefix}-net"
        self.hosts: list[Host] = []
        self.workdir = Path(tempfile.mkdtemp(prefix=f"{self.prefix}-"))
        self.workdir.chmod(0o700)
        self.keys: KeyPair | None = None
        self.build_log = build_log or self.workdir / "host-image-build.log"
        self.loaded: list[archives.LoadResult] = []
        self._containers: list[str] = []
        self._volumes: list[str] = []
        self._network_created = False
        self._closed = False

    # -- lifecycle ---------------------------------------------------------------------------------
    def __enter__(self) -> Harness:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _labels(self) -> list[str]:
        return ["--label", TEST_LABEL, "--label", f"{RUN_LABEL}={self.run_id}"]

    def start(self) -> None:
        ensure_host_image(self.build_log)
        net = check_subnet(self.subnet, self.n_hosts)
        self.keys = generate_key_pair(self.workdir / "ssh")
        docker("network", "create", *self._labels(), "--driver", "bridge", "--subnet", str(net), self.network)
        self._network_created = True
        for index in range(1, self.n_hosts + 1):
            self.hosts.append(self._start_host(index, str(net.network_address + 10 + index)))
        for host in self.hosts:
            self._wait_ready(host)

    def _start_host(self, index: int, ip: str) -> Host:
        assert self.keys is not None
        container = f"{self.prefix}-host{index}"
        volume = f"{container}-docker"
        self._volumes.append(volume)
        docker("volume", "create", *self._labels(), volume)
        self._containers.append(container)
        host = Host(f"host{index}", index, ip, container, volume, SshTarget(ip, self.keys.private_key))
        caps = [arg for cap in HOST_CAPABILITIES for arg in ("--cap-add", cap)]
        docker(
            "run", "--detach", "--init", "--name", container, "--hostname", host.name, *self._labels(),
            "--network", self.network, "--ip", ip, *caps,
            "--security-opt", "seccomp=unconfined", "--security-opt", "apparmor=unconfined",
            "--volume", "/sys/fs/cgroup:/sys/fs/cgroup:rw", "--volume", f"{volume}:/var/lib/docker",
            "--env", f"HOST_AUTHORIZED_KEY={self.keys.public_line}",
            "--env", f"HOST_DOCKERD_BIP={host.dockerd_bip}",
            "--env", f"HOST_DOCKERD_POOL={host.dockerd_pool}",
            HOST_IMAGE,
        )  # fmt: skip
        return host

    def _wait_ready(self, host: Host) -> None:
        """Until the host answers over SSH and its own engine answers (bounded)."""
        deadline = time.monotonic() + READY_TIMEOUT_S
        last = ""
        while time.monotonic() < deadline:
            proc = host.ssh.run(["docker", "info", "--format", "{{.ID}}"], check=False, timeout=30)
            if proc.returncode == 0 and proc.stdout.strip():
                return
            last = (proc.stderr or proc.stdout).strip()
            time.sleep(1)
        raise DockerError(
            f"{host.name} ({host.container}) not ready within {READY_TIMEOUT_S:.0f}s: {last}\n"
            f"dockerd log:\n{self.dockerd_log(host)[-2000:]}"
        )

    def close(self) -> None:
        """Remove the hosts, their volumes, the network and the temp keys; tolerant of partial starts."""
        if self._closed:
            return
        self._closed = True
        if self._containers:
            docker("rm", "--force", "--volumes", *self._containers, check=False, timeout=180)
        for volume in self._volumes:
            docker("volume", "rm", "--force", volume, check=False)
        if self._network_created:
            docker("network", "rm", self.network, check=False)
        # anything else carrying this run's label (e.g. created by hand while debugging)
        for kind in ("container", "volume", "network"):
            listing = docker(kind, "ls", "--quiet", *(["--all"] if kind == "container" else []),
                             "--filter", f"label={RUN_LABEL}={self.run_id}", check=False)  # fmt: skip
            for obj in listing.stdout.split():
                docker(kind, "rm", *(["--force"] if kind != "network" else []), obj, check=False)
        shutil.rmtree(self.workdir, ignore_errors=True)

    # -- access ------------------------------------------------------------------------------------
    def host(self, name: str) -> Host:
        for host in self.hosts:
            if host.name == name:
                return host
        raise KeyError(f"no harness host named {name}: have {[h.name for h in self.hosts]}")

    @property
    def addresses(self) -> dict[str, str]:
        return {h.name: h.ip for h in self.hosts}

    def docker_exec(self, host: Host, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        """The harness's own checks inside a host (never used for the product's work)."""
        return docker("exec", host.container, *args, check=check)

    def dockerd_log(self, host: Host) -> str:
        return self.docker_exec(host, "cat", "/var/log/dockerd.log", check=False).stdout

    # -- inventory and images ----------------------------------------------------------------------
    def inventory(
        self,
        path: Path,
        layout: Mapping[str, Sequence[str]],
        *,
        group_vars: Mapping[str, Mapping[str, Any]] | None = None,
        host_vars: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> Path:
        """Write a YAML inventory of these hosts for `layout` (group -> host names)."""
        assert self.keys is not None, "start() the harness first"
        data = build_inventory(
            self.addresses, self.keys.private_key, layout, group_vars=group_vars, host_vars=host_vars
        )
        return write_inventory(path, data)

    def load_images(
        self, archive_dir: Path, layout: Mapping[str, Sequence[str]], *, monitoring: bool = False
    ) -> list[archives.LoadResult]:
        """Save the product images on the controller (cached) and load on each host what its groups
        need (archives.IMAGES_BY_ROLE): servers ovms-double, tls-proxy and local-access, clients the
        client image, cameras the camera simulator, monitoring hosts Prometheus; with `monitoring`
        (the inventory sets ovms_monitoring_enabled) servers and clients also archives.MONITORED_IMAGES."""
        needs = archives.images_by_host(layout, load_groups(), monitoring=monitoring)
        wanted = sorted({i for names in needs.values() for i in names})
        manifest = archives.save_archives(archive_dir, wanted)
        results = archives.distribute(
            archive_dir, manifest, {name: (self.host(name).ssh, images) for name, images in needs.items()}
        )
        self.loaded += results
        return results
