"""What each role owning its actions buys, on the real engine with the localhost inventory (names of
this module's own, as tests/e2e/test_deploy_localhost.py isolates them):

- `launcher deploy --check` on a host never deployed exits 0 and creates nothing;
- a published port in use stops the deploy in the prechecks, naming the host, the port and its
  variable, before any container exists;
- `launcher deploy --tags client` re-deploys the clients only: a server change in the same run is
  not applied.

One deployment for the module (the --tags test), removed at the end."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from testbed.dockerutil import docker
from testbed.isolation import write_isolation
from testbed.paths import PROJECT_ROOT

pytestmark = [pytest.mark.docker, pytest.mark.slow]

LAUNCHER = str(Path(sys.executable).parent / "launcher")
DOUBLE = "ovms-launcher/ovms-double:dev"


@dataclass
class Site:
    tag: str
    root: Path
    inventory: list[str]

    def launcher(self, *args: str, words: int = 1, timeout: float = 600) -> subprocess.CompletedProcess:
        """`launcher <args>` with this site's inventories after the first `words` (the command)."""
        env = {
            **os.environ,
            "COLUMNS": "200",
            "OVMS_LAUNCHER_RUNS": str(self.root / "runs"),
            "OVMS_LAUNCHER_CERTS_DIR": str(self.root / "certs"),
        }
        return subprocess.run(
            [LAUNCHER, *args[:words], *self.inventory, *args[words:]],
            capture_output=True, text=True, timeout=timeout, cwd=PROJECT_ROOT, env=env, check=False,
        )  # fmt: skip

    def containers(self) -> dict[str, str]:
        """name -> id of this module's containers."""
        out = docker("ps", "-a", "--filter", f"name={self.tag}", "--format", "{{.Names}} {{.ID}}").stdout
        return dict(line.split() for line in out.splitlines() if line.strip())

    def networks(self) -> list[str]:
        return docker("network", "ls", "-q", "--filter", f"name={self.tag}").stdout.split()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    root = tmp_path_factory.mktemp("roles")
    tag = f"ovms-roles-{uuid.uuid4().hex[:6]}"
    override = write_isolation(root / "override", tag, root / "data", ovms_server_image=DOUBLE)
    inventory = ["-i", str(PROJECT_ROOT / "inventories" / "localhost"), "-i", str(override)]
    site = Site(tag, root, inventory)
    try:
        yield site
    finally:
        site.launcher("destroy", "--yes")
        for name in site.containers():
            docker("rm", "-f", name, check=False)
        for network in site.networks():
            docker("network", "rm", network, check=False)


def test_check_on_a_new_host_exits_0_and_creates_nothing(site: Site):
    run = site.launcher("deploy", "--check")
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    assert "changed" in run.stdout
    assert site.containers() == {} and site.networks() == []
    assert not (site.root / "data").exists()


def test_a_busy_port_stops_the_deploy_in_the_prechecks(site: Site):
    made = site.launcher("certs", "generate", "--dir", str(site.root / "certs"), words=2)
    assert made.returncode == 0, made.stdout[-3000:] + made.stderr[-3000:]
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        run = site.launcher("deploy", "-e", json.dumps({"ovms_tls_enabled": True, "ovms_tls_port": port}))
    assert run.returncode != 0
    text = " ".join((run.stdout + run.stderr).split())
    assert f"port {port} is in use by another program on this host (ovms_tls_port)" in text, text[-4000:]
    assert "localhost failed at [prechecks]" in text, text[-4000:]
    assert site.containers() == {} and site.networks() == []


def _summary(run: subprocess.CompletedProcess) -> dict:
    return json.loads(run.stdout.strip().splitlines()[-1])


def test_tags_client_redeploys_the_clients_only(site: Site):
    first = site.launcher("deploy", "--json")
    assert first.returncode == 0, first.stdout[-4000:] + first.stderr[-4000:]
    before = site.containers()
    server, client = f"{site.tag}-server", f"{site.tag}-client-person-detection-1"
    guard = f"{server}-local-access"  # keeps the local-access rule across engine starts (ovms_server)
    assert set(before) == {server, guard, client}

    # a server change and a client change in one run: --tags client applies the client's only
    run = site.launcher(
        "deploy", "--tags", "client", "--json", "-e", "ovms_server_log_level=DEBUG",
        "-e", '{"ovms_client_env": {"CLIENT_TARGET_FPS": "10"}}',
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    after = site.containers()
    assert after[server] == before[server], "the server container was recreated"
    assert after[guard] == before[guard], "the local-access guard was recreated"
    assert after[client] != before[client], "the client container was not recreated"
    assert "--log_level" in docker("inspect", "--format", "{{json .Args}}", server).stdout
    assert "DEBUG" not in docker("inspect", "--format", "{{json .Args}}", server).stdout
    assert _summary(run)["hosts"][0]["changed"] >= 1
