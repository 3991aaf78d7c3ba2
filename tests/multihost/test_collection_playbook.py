"""The collection's acceptance (issue 20) on the three harness hosts: `ansible-galaxy collection
build`, its tarball installed into an empty collections path (offline: community.docker and
community.crypto are the collections the `ansible` package bundles), then plain `ansible-playbook
ovms.edge.deploy` — no launcher, no checkout, no `ansible.cfg` — deploys host1's server behind the
mTLS proxy and the client of host2; a re-run changes nothing; `ansible-playbook
ovms.edge.status` reads the remote server's metrics through the proxy (the module ovms.edge.ovms_probe);
`ansible-playbook ovms.edge.destroy` leaves no container or network of ours.

The launcher only prepares what a user of the collection prepares by other means (docs/collection.md):
the PKI (`launcher certs generate -i INV` into a folder passed as OVMS_LAUNCHER_CERTS_DIR), the models
and the sample video in the cache (OVMS_LAUNCHER_CACHE). The playbook runs use the ansible-playbook of
the virtual environment from a folder outside the checkout, with every ANSIBLE_* setting of this
process dropped, and with stand-ins for our Python packages first on PYTHONPATH: a run that imports
`launcher`, `client`, `ovms_double` or `testbed` (in ansible-playbook or in a module it runs on the
controller) leaves a mark and fails.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from launcher.inventory import SERVERS_GROUP
from launcher.paths import cache_dir
from multihost.conftest import GROUPS
from testbed import remote as rm
from testbed.harness import Harness
from testbed.launcher_cli import Launcher
from testbed.paths import PROJECT_ROOT

pytestmark = pytest.mark.collection

BIN = Path(sys.executable).parent
SERVER, CLIENTS = "host1", ("host2",)
# Remote mode needs a server and a client on two hosts; a second client host would add a third of the
# controller's work to every run (plain ansible-playbook: a process per host and task) and nothing the
# other multihost modules do not cover.
LAYOUT = {GROUPS["servers"]: [SERVER], GROUPS["clients"]: list(CLIENTS)}
MODEL = rm.MODEL
OUR_PACKAGES = ("launcher", "client", "ovms_double", "testbed")
PLAYBOOK_TIMEOUT_S = 600
RECAP = re.compile(r"^(\S+)\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.MULTILINE)
POISON = """import os, pathlib
pathlib.Path(os.environ["OVMS_TEST_POISON_MARK"]).write_text(__name__ + "\\n")
raise ImportError(f"{__name__} imported by a run of the collection")
"""


@dataclass
class Plain:
    harness: Harness
    workdir: Path
    inventory: Path
    env: dict[str, str]
    mark: Path
    deployed: bool = False

    def playbook(
        self, name: str, *args: str, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """`ansible-playbook ovms.edge.<name> -i INV` from the work folder (outside the checkout)."""
        proc = subprocess.run(
            [str(BIN / "ansible-playbook"), f"ovms.edge.{name}", "-i", str(self.inventory), *args],
            cwd=self.workdir,
            env={**self.env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=PLAYBOOK_TIMEOUT_S,
            check=False,
        )
        assert not self.mark.exists(), f"the run imported {self.mark.read_text()}"
        return proc


def recap(proc: subprocess.CompletedProcess[str]) -> dict[str, dict[str, int]]:
    """The PLAY RECAP of a run: host -> {ok, changed, unreachable, failed}."""
    return {
        host: {"ok": int(ok), "changed": int(changed), "unreachable": int(unr), "failed": int(failed)}
        for host, ok, changed, unr, failed in RECAP.findall(proc.stdout)
    }


def describe(proc: subprocess.CompletedProcess[str]) -> str:
    return f"$ {' '.join(proc.args)}\nexit {proc.returncode}\n{proc.stdout[-6000:]}\n{proc.stderr[-3000:]}"


def _install_collection(workdir: Path) -> Path:
    """Build the tarball and install it into the empty collections path <workdir>/collections."""
    build, collections = workdir / "build", workdir / "collections"
    build.mkdir()
    collections.mkdir()
    galaxy = str(BIN / "ansible-galaxy")
    subprocess.run(
        [galaxy, "collection", "build", "--output-path", str(build), str(PROJECT_ROOT)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    (tarball,) = build.glob("ovms-edge-*.tar.gz")
    # --offline: the dependencies are found installed (the ansible package's bundled collections)
    subprocess.run(
        [galaxy, "collection", "install", "--offline", "-p", str(collections), str(tarball)],
        check=True,
        capture_output=True,
        timeout=120,
        env={**os.environ, "ANSIBLE_COLLECTIONS_PATH": str(collections)},
    )
    assert sorted(p.name for p in (collections / "ansible_collections").iterdir()) == ["ovms"]
    return collections


def _plain_env(workdir: Path, collections: Path, certs: Path) -> tuple[dict[str, str], Path]:
    """The environment of a plain ansible-playbook run, and the mark a poisoned import leaves."""
    poison = workdir / "poison"
    for package in OUR_PACKAGES:
        (poison / package).mkdir(parents=True)
        (poison / package / "__init__.py").write_text(POISON)
    mark = workdir / "imported"
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("ANSIBLE_", "OVMS_")) and k != "PYTHONPATH"
    }
    env.update(
        {
            "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
            "PYTHONPATH": str(poison),
            "OVMS_TEST_POISON_MARK": str(mark),
            "ANSIBLE_COLLECTIONS_PATH": str(collections),
            "OVMS_LAUNCHER_CERTS_DIR": str(certs),
            "OVMS_LAUNCHER_CACHE": str(cache_dir()),
            # what docs/collection.md suggests for a fleet: pipelining, and a connect timeout for busy hosts
            "ANSIBLE_PIPELINING": "true",
            "ANSIBLE_TIMEOUT": "30",
            "ANSIBLE_NOCOLOR": "1",
        }
    )
    return env, mark


@pytest.fixture(scope="module")
def plain(multihost: Harness, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Plain]:
    workdir = tmp_path_factory.mktemp("collection-plain")
    assert PROJECT_ROOT not in workdir.resolve().parents
    launcher = Launcher(workdir / "certs", workdir / "runs")
    media = rm.prepare_inputs(launcher, workdir)
    variables = rm.group_vars(media)
    variables[SERVERS_GROUP]["ovms_server_image"] = "ovms-launcher/ovms-double:dev"
    inventory = multihost.inventory(workdir / "hosts.yml", LAYOUT, group_vars=variables)
    launcher.ok(["certs", "generate", "-i", str(inventory), "--dir", str(workdir / "certs")])
    env, mark = _plain_env(workdir, _install_collection(workdir), workdir / "certs")
    state = Plain(multihost, workdir, inventory, env, mark)
    try:
        yield state
    finally:
        if state.deployed:
            state.playbook("destroy")


def test_plain_ansible_playbook_deploys_the_installed_collection(plain: Plain):
    proc = plain.playbook("deploy")
    plain.deployed = True
    assert proc.returncode == 0, describe(proc) + "\n" + rm.diagnostics(plain.harness.hosts)
    rows = recap(proc)
    assert set(rows) == {SERVER, *CLIENTS}, describe(proc)
    assert all(r["failed"] == 0 and r["unreachable"] == 0 for r in rows.values()), rows
    server = plain.harness.host(SERVER)
    for name in ("ovms-server", "ovms-server-tls"):
        info = rm.container(server, name)
        assert info and info["State"]["Running"], f"{name} is not running on {SERVER}"
    for client in CLIENTS:
        env = rm.container_env(rm.container(plain.harness.host(client), f"ovms-client-{rm.PROFILE}-1"))
        assert env["OVMS_ADDRESS"] == f"{server.ip}:9443" and "OVMS_TLS_CERT" in env, env


def test_a_rerun_changes_nothing(plain: Plain):
    if not plain.deployed:
        pytest.skip("the deploy did not run")
    proc = plain.playbook("deploy")
    assert proc.returncode == 0, describe(proc)
    assert {h: r["changed"] for h, r in recap(proc).items()} == {SERVER: 0, **dict.fromkeys(CLIENTS, 0)}, (
        describe(proc)
    )


def test_status_shows_the_remote_servers_metrics(plain: Plain):
    if not plain.deployed:
        pytest.skip("the deploy did not run")
    # the clients stream while status reads the server's metrics twice through the proxy
    assert rm.wait_for_person(plain.harness.host(CLIENTS[0]), f"{rm.PROFILE}-1"), "no detections yet"
    proc = plain.playbook("status", env={"ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json"})
    assert proc.returncode == 0, describe(proc)
    run = json.loads(proc.stdout)
    summaries = {
        host: result["ansible_facts"]["ovms_summary"]
        for play in run["plays"]
        for task in play["tasks"]
        if task["task"]["name"] == "Summarise this host"
        for host, result in task["hosts"].items()
    }
    server = summaries[SERVER]
    assert "mTLS" in str(server["endpoint"]), server
    assert "AVAILABLE" in json.dumps(server["models"].get(MODEL)), server["models"]
    assert not server["model_errors"], server["model_errors"]
    metrics = server["model_metrics"][MODEL]
    assert metrics["requests"] and metrics["requests"] > 0, metrics
    assert metrics["failures"] == 0 and metrics["inference_ms"] and metrics["inference_ms"] > 0, metrics
    for client in CLIENTS:
        assert any(c["name"] == f"{rm.PROFILE}-1" for c in summaries[client]["clients"]), summaries[client]


def test_destroy_leaves_nothing_of_ours(plain: Plain):
    if not plain.deployed:
        pytest.skip("the deploy did not run")
    proc = plain.playbook("destroy")
    plain.deployed = False
    assert proc.returncode == 0, describe(proc)
    for host in plain.harness.hosts:
        assert rm.managed_objects(host) == {"containers": [], "networks": []}, host.name
