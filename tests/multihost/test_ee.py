"""`--ee`: deploy, status, re-deploy and destroy run inside the execution environment image
(`launcher images build ee`) through ansible-runner's container mode, as AWX runs a job, against two
of the session's hosts: host1 the server behind the mTLS proxy, host2 a client (remote mode; the
third host is left out to keep the module short, docs/ee.md).

The module starts from whatever the module before it left on the hosts (it destroys first when
anything of ours is there) and leaves them clean (its last test destroys, and the fixture destroys
when a test failed before that).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from launcher.inventory import CLIENTS_GROUP, SERVERS_GROUP
from multihost.conftest import CAMERA_LAYOUT
from testbed import remote as rm
from testbed.harness import Harness
from testbed.launcher_cli import Launcher, LauncherRun

pytestmark = [pytest.mark.collection, pytest.mark.docker]

EE_IMAGE = "ovms-launcher/ee:dev"
SERVER, CLIENTS = "host1", ("host2",)
LAYOUT = {SERVERS_GROUP: [SERVER], CLIENTS_GROUP: list(CLIENTS)}
MODEL = PROFILE = rm.PROFILE
INSTANCE = f"{PROFILE}-1"
EE = ["--ee", EE_IMAGE, "--json"]
DEPLOY = ["-e", "ovms_server_image=ovms-launcher/ovms-double:dev", *EE]


@dataclass
class EeRun:
    harness: Harness
    certs: Path
    inventory: Path
    launcher: Launcher
    # every host of the session in its usual roles: what cleans up after another module
    everything: Path
    deployed: LauncherRun | None = None
    destroyed: bool = False

    def run(self, action: str, *extra: str) -> LauncherRun:
        return self.launcher.run([action, "-i", str(self.inventory), *extra])

    def require_deployed(self) -> None:
        if self.deployed is None or self.deployed.returncode != 0:
            pytest.skip("the --ee deploy failed (see test_deploy_in_the_execution_environment)")

    def clean(self) -> None:
        if self.leftovers():
            self.launcher.run(["destroy", "-i", str(self.everything), "--json"])

    def leftovers(self) -> dict[str, dict[str, list[str]]]:
        found = {host.name: rm.managed_objects(host) for host in self.harness.hosts}
        return {name: objects for name, objects in found.items() if any(objects.values())}


def _container_command(run: LauncherRun) -> list[str]:
    """The command ansible-runner ran for this run (artifacts/<ident>/command)."""
    run_dir = Path(run.summary["run_dir"])
    return json.loads(next(run_dir.glob("artifacts/*/command")).read_text())["command"]


@pytest.fixture(scope="module")
def ee(multihost: Harness, tmp_path_factory: pytest.TempPathFactory) -> Iterator[EeRun]:
    workdir = tmp_path_factory.mktemp("ee")
    launcher = Launcher(workdir / "certs", workdir / "runs")
    launcher.ok(["images", "build", "ee"], timeout=900)
    media = rm.prepare_inputs(launcher, workdir)
    inventory = multihost.inventory(workdir / "hosts.yml", LAYOUT, group_vars=rm.group_vars(media))
    everything = multihost.inventory(workdir / "all.yml", CAMERA_LAYOUT, group_vars=rm.group_vars(media))
    state = EeRun(multihost, workdir / "certs", inventory, launcher, everything)
    launcher.ok(["certs", "generate", "-i", str(inventory), "--dir", str(state.certs)])
    state.clean()  # what an earlier module left
    assert state.leftovers() == {}
    try:
        yield state
    finally:
        if not state.destroyed:
            state.clean()


def test_deploy_in_the_execution_environment(ee: EeRun):
    run = ee.run("deploy", *DEPLOY)
    ee.deployed = run
    assert run.returncode == 0, run.describe() + "\n" + rm.diagnostics(ee.harness.hosts)
    assert {h["host"] for h in run.summary["hosts"]} == {SERVER, *CLIENTS}
    # the live progress: every task result came back from inside the container as a JSON line
    events = [json.loads(line) for line in run.stdout.splitlines() if line.startswith('{"')]
    assert sum(1 for e in events if e.get("type") == "event") > 20, run.stdout[-2000:]
    # it ran in the image, with the certificates hosts receive and never the CA's folder
    command = _container_command(run)
    assert command[:2] == ["docker", "run"] and EE_IMAGE in command, command
    volumes = [command[i + 1] for i, arg in enumerate(command) if arg == "-v"]
    assert any(v.startswith(f"{ee.certs}/clients:") for v in volumes), volumes
    sources = [Path(v.split(":", 1)[0]) for v in volumes]
    ca_dir = ee.certs / "ca"
    assert (ca_dir / "ca.key").is_file()
    assert not any(s in (ee.certs, ca_dir) or ca_dir in s.parents for s in sources), volumes
    server = ee.harness.host(SERVER)
    for name in ("ovms-server", "ovms-server-tls"):
        info = rm.container(server, name)
        assert info and info["State"]["Running"], f"{name} is not running on {SERVER}"
    client = ee.harness.host(CLIENTS[0])
    assert rm.wait_for_person(client, INSTANCE), "no person detection through mTLS\n" + rm.diagnostics(
        [client]
    )


def test_status_in_the_execution_environment_reads_the_remote_server(ee: EeRun):
    ee.require_deployed()
    run = ee.run("status", *EE)
    assert run.returncode == 0, run.describe()
    server = run.host(SERVER)
    assert "AVAILABLE" in json.dumps(server["models"][MODEL]), server["models"]
    # OVMS's /metrics, read through the mTLS proxy with the controller's certificate from inside the EE
    served = server["metrics"][MODEL]
    assert served["rate"] and served["rate"] > 0 and served["failures"] == 0, served
    for name in CLIENTS:
        assert INSTANCE in {c["name"] for c in run.host(name)["clients"]}, run.host(name)


def test_redeploy_in_the_execution_environment_changes_nothing(ee: EeRun):
    ee.require_deployed()
    run = ee.run("deploy", *DEPLOY)
    assert run.returncode == 0, run.describe()
    assert run.changed() == {SERVER: 0, **dict.fromkeys(CLIENTS, 0)}, run.describe()


def test_destroy_in_the_execution_environment_leaves_the_hosts_clean(ee: EeRun):
    run = ee.run("destroy", *EE)
    ee.destroyed = run.returncode == 0
    assert run.returncode == 0, run.describe()
    assert ee.leftovers() == {}
