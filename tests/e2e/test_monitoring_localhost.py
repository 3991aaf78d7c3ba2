"""Monitoring of the single-system setup on the real Docker engine: `launcher deploy
-e ovms_monitoring_enabled=true` with the shipped localhost inventory (localhost is in the
ovms_monitoring group), isolated by a tag like the other localhost suites.

One deployment for the module, in file order: every target up through Prometheus's HTTP API, the
server's request rate and every client's FPS there, no alert firing → the UI on loopback only, the
gateway and exporters unpublished and hardened → `launcher status` names the endpoint → a stopped
client fires OvmsClientDown → destroy keeps the time series, --purge removes them. Prometheus scrapes
and evaluates every 3 s here and OvmsClientDown waits 6 s (variables the role documents); the shipped
defaults' timing is proven by promtool (tests/integration/test_monitoring_rules.py). A re-deploy with
the monitoring on changes nothing: tests/multihost/test_remote_e2e.py (every host monitored) and the
role's Molecule idempotence; the status line's text: tests/unit/test_status_monitoring.py.
"""

from __future__ import annotations

import json
import shutil
import socket
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from testbed.dockerutil import docker
from testbed.isolation import write_isolation
from testbed.launcher_cli import Launcher, LauncherRun
from testbed.paths import PROJECT_ROOT

pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.observability]

DOUBLE = "ovms-launcher/ovms-double:dev"
PROFILE = "person-detection"
ROLE_LABEL = "ovms-launcher.role=monitoring"
# shortened for the test (the shipped ones: 15 s, 15 s, 1 m)
FAST = {
    "ovms_monitoring_scrape_interval": "3s",
    "ovms_monitoring_evaluation_interval": "3s",
    "ovms_monitoring_client_down_for": "6s",
}


def _docker(*args: str) -> str:
    return docker(*args, check=False).stdout


def _inspect(name: str) -> dict:
    out = _docker("inspect", name)
    return json.loads(out)[0] if out.strip() else {}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Monitored:
    tag: str
    inventory: list[str]
    data: Path
    port: int
    launcher: Launcher
    deploy: LauncherRun
    purged: bool = False

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/v1"

    def query(self, expr: str) -> list[dict]:
        reply = requests.get(f"{self.api}/query", params={"query": expr}, timeout=10)
        reply.raise_for_status()
        return reply.json()["data"]["result"]

    def targets(self) -> list[dict]:
        reply = requests.get(f"{self.api}/targets", params={"state": "active"}, timeout=10)
        reply.raise_for_status()
        return reply.json()["data"]["activeTargets"]

    def firing(self) -> list[dict]:
        return [a for a in self.query('ALERTS{alertstate="firing"}')]

    def require_deployed(self) -> None:
        if self.deploy.returncode != 0:
            pytest.skip("the deploy failed (see test_every_target_is_up_and_counts_inference)")


def _wait(what: str, check, timeout: float = 90, every: float = 2):
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            last = check()
        except requests.RequestException as exc:
            last = exc
        else:
            if last:
                return last
        assert time.monotonic() < deadline, f"{what} within {timeout:.0f} s; last: {last!r}"
        time.sleep(every)


@pytest.fixture(scope="module")
def monitored(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Monitored]:
    tag = f"ovms-mon-{uuid.uuid4().hex[:6]}"
    data = tmp_path_factory.mktemp("monitoring")
    port = _free_port()
    override = write_isolation(
        data / "override",
        tag,
        data,
        ovms_monitoring_enabled=True,
        ovms_monitoring_port=port,
        **FAST,
    )
    inventory = ["-i", str(PROJECT_ROOT / "inventories" / "localhost"), "-i", str(override)]
    launcher = Launcher(data / "certs", data / "runs")
    run = launcher.run(["deploy", *inventory, "-e", f"ovms_server_image={DOUBLE}", "--json"])
    state = Monitored(tag, inventory, data, port, launcher, run)
    try:
        yield state
    finally:
        if not state.purged:
            launcher.run(["destroy", *inventory, "--yes", "--purge"])
        for name in _docker("ps", "-aq", "--filter", f"name={tag}").split():
            _docker("rm", "-f", name)
        for name in _docker("network", "ls", "-q", "--filter", f"name={tag}").split():
            _docker("network", "rm", name)
        shutil.rmtree(data, ignore_errors=True)


def _disk_nearly_full(path: Path, ratio: float = 0.9) -> bool:
    usage = shutil.disk_usage(path)
    return usage.used / usage.total > ratio


def test_every_target_is_up_and_counts_inference(monitored: Monitored):
    run = monitored.deploy
    assert run.returncode == 0, run.describe()

    def all_up():
        targets = monitored.targets()
        jobs = {t["labels"]["job"] for t in targets}
        ready = {"ovms_server", "ovms_client", "ovms_node"} <= jobs
        return targets if ready and all(t["health"] == "up" for t in targets) else None

    targets = _wait("every Prometheus target up", all_up)
    clients = [t for t in targets if t["labels"]["job"] == "ovms_client"]
    assert [t["labels"].get("container") for t in clients] == [f"{monitored.tag}-client-{PROFILE}-1"], clients

    rate = _wait(
        "a KServe request rate above 0",
        lambda: monitored.query('sum(rate(ovms_requests_success{method="ModelInfer"}[1m])) > 0'),
    )
    assert float(rate[0]["value"][1]) > 0

    fps = _wait(
        "every client stream at 14 FPS or more",
        lambda: [r for r in monitored.query("ovms_client_fps") if float(r["value"][1]) >= 14],
        timeout=60,
    )
    assert {r["metric"]["profile"] for r in fps} == {PROFILE}
    target = monitored.query("ovms_client_target_fps")
    assert target and float(target[0]["value"][1]) == 15, target
    frames = monitored.query("ovms_client_frames_total")
    assert frames and float(frames[0]["value"][1]) > 0, frames
    up = monitored.query("ovms_client_server_up")
    assert up and float(up[0]["value"][1]) == 1, up
    latency = monitored.query("ovms_client_inference_latency_seconds_count")
    assert latency and latency[0]["metric"]["model"] == PROFILE, latency

    # the data folders' filesystems, from the node exporter beside Prometheus
    mounts = {r["metric"]["mountpoint"] for r in monitored.query("node_filesystem_size_bytes")}
    assert {"/data/monitoring", "/data/models", "/data/results"} <= mounts, mounts

    firing = monitored.firing()
    if _disk_nearly_full(monitored.data):
        firing = [a for a in firing if a["metric"]["alertname"] != "OvmsDiskFull"]
    assert firing == [], firing


def test_only_the_ui_is_published_on_loopback_and_every_container_is_hardened(monitored: Monitored):
    monitored.require_deployed()
    names = _docker(
        "ps", "-q", "--filter", f"label={ROLE_LABEL}", "--filter", f"name={monitored.tag}"
    ).split()
    containers = [_inspect(n) for n in names]
    by_name = {c["Name"].lstrip("/"): c for c in containers}
    prometheus = f"{monitored.tag}-monitoring"
    assert {prometheus, f"{prometheus}-gateway", f"{prometheus}-node"} <= set(by_name), sorted(by_name)
    for name, info in by_name.items():
        host = info["HostConfig"]
        bindings = host.get("PortBindings") or {}
        if name == prometheus:
            published = [b for spec in bindings.values() for b in spec]
            assert published == [{"HostIp": "127.0.0.1", "HostPort": str(monitored.port)}], bindings
        else:
            assert not bindings, (name, bindings)
        assert host["ReadonlyRootfs"] is True, name
        assert host["CapDrop"] == ["ALL"], name
        assert info["Config"]["User"] not in ("", "0", "root", "0:0"), name
        assert info["Config"]["Labels"].get("ovms-launcher.role") == "monitoring", name


def test_status_names_the_monitoring_endpoint(monitored: Monitored):
    monitored.require_deployed()
    status = monitored.launcher.run(["status", *monitored.inventory, "--json"])
    assert status.returncode == 0, status.describe()
    host = status.summary["hosts"][0]
    monitoring = host["monitoring"]
    assert monitoring["url"] == f"http://127.0.0.1:{monitored.port}"
    assert monitoring["running"] is True
    assert monitoring["targets"] >= 3 and monitoring["targets_up"] == monitoring["targets"], monitoring


def test_a_stopped_client_fires_ovms_client_down(monitored: Monitored):
    monitored.require_deployed()
    client = f"{monitored.tag}-client-{PROFILE}-1"
    _docker("stop", "--time", "5", client)
    stopped = time.monotonic()
    alerts = _wait(
        "OvmsClientDown firing",
        lambda: [a for a in monitored.firing() if a["metric"]["alertname"] == "OvmsClientDown"],
        timeout=180,
        every=3,
    )
    assert alerts[0]["metric"]["container"] == client, alerts
    print(f"OvmsClientDown fired {time.monotonic() - stopped:.0f} s after the client stopped")
    _docker("start", client)


def test_destroy_keeps_the_time_series_and_purge_removes_them(monitored: Monitored):
    monitored.require_deployed()
    series = monitored.data / "monitoring" / "prometheus"
    gone = monitored.launcher.run(["destroy", *monitored.inventory, "--yes"])
    assert gone.returncode == 0, gone.describe()
    assert (
        _docker("ps", "-aq", "--filter", f"label={ROLE_LABEL}", "--filter", f"name={monitored.tag}").split()
        == []
    )
    assert series.is_dir() and any(series.iterdir()), f"{series} did not survive destroy"
    purged = monitored.launcher.run(["destroy", *monitored.inventory, "--yes", "--purge"])
    assert purged.returncode == 0, purged.describe()
    monitored.purged = True
    assert not (monitored.data / "monitoring").exists()
