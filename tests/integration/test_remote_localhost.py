"""Remote (mTLS) mode end to end on this machine, through the launcher CLI.

One server host and two client hosts, all `ansible_connection: local` but distinct inventory hosts,
so the clients' server is "another host" and the deploy goes remote by itself: OVMS (the double) on an
internal network, the tls-proxy publishing only its TLS port on 127.0.0.1, the clients dialling the
proxy by its advertised name with their own certificates. Every name, folder, network and port is
the test's own; a real deploy on this machine is untouched.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from double_harness import free_port

from bench.taskprofile import latest_run, run_events
from launcher.content import content
from testbed.dockerutil import docker, engine_available, image_exists, inspect

pytestmark = [pytest.mark.docker, pytest.mark.slow]

LAUNCHER = str(Path(sys.executable).parent / "launcher")
IMAGES = ("ovms-launcher/ovms-double:dev", "ovms-launcher/client:dev", "ovms-launcher/tls-proxy:dev")


@dataclass
class Site:
    root: Path
    ident: str
    port: int

    @property
    def inventory(self) -> Path:
        return self.root / "inventory.yml"

    @property
    def certs(self) -> Path:
        return self.root / "certs"

    @property
    def server(self) -> str:
        return f"ovms-rt-{self.ident}-server"

    @property
    def proxy(self) -> str:
        return f"{self.server}-tls"

    def client(self, host: str) -> str:
        return f"ovms-rt-{self.ident}-{host}-person-detection-1"

    def results(self, host: str) -> Path:
        return self.root / host / "results" / "person-detection-1"

    @property
    def runs(self) -> Path:
        return self.root / "runs"

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "OVMS_LAUNCHER_CERTS_DIR": str(self.certs),
            "OVMS_LAUNCHER_RUNS": str(self.runs),
            "COLUMNS": "200",
        }

    def last_deploy_events(self) -> list[dict]:
        """The runner events of the newest deploy, in order."""
        run = latest_run(self.runs, "deploy")
        assert run is not None, f"no deploy run in {self.runs}"
        return run_events(run)

    def launcher(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
        return subprocess.run(
            [LAUNCHER, *args], capture_output=True, text=True, timeout=timeout, env=self.env(), check=False
        )

    def run(self, action: str, *args: str) -> tuple[int, dict]:
        """`launcher ACTION -i INV --json ...` -> (exit code, the summary line)."""
        proc = self.launcher(action, "-i", str(self.inventory), "--json", *args)
        summary = {}
        for line in proc.stdout.splitlines():
            try:
                item = json.loads(line)
            except ValueError:
                continue
            if isinstance(item, dict) and item.get("type") == "summary":
                summary = item
        assert summary, f"no summary from launcher {action}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        return proc.returncode, summary


def _inventory(site: Site) -> dict:
    common = {
        "ansible_connection": "local",
        "ansible_python_interpreter": "{{ ansible_playbook_python }}",
        "ovms_server_network": f"ovms-rt-{site.ident}",
        "ovms_client_network": f"ovms-rt-{site.ident}",
        "ovms_server_container_name": site.server,
        "ovms_server_models": [{"name": "person-detection"}],
        "ovms_tls_port": site.port,
        "ovms_tls_bind_address": "127.0.0.1",
        "ovms_client_results_timeout": 90,
    }
    client = {"ovms_client_server": "rt-server", "ovms_client_profiles": [{"name": "person-detection"}]}
    return {
        "all": {
            "vars": common,
            "children": {
                "ovms_servers": {
                    "hosts": {
                        "rt-server": {
                            "ovms_server_data_dir": str(site.root / "server"),
                            # the clients share the proxy's network and reach it by this name
                            "ovms_advertise_address": site.proxy,
                            # the controller (launcher status, this test) dials 127.0.0.1
                            "ovms_tls_extra_sans": ["IP:127.0.0.1"],
                            "ovms_tls_probe_address": "127.0.0.1",
                        }
                    }
                },
                "ovms_clients": {
                    "hosts": {
                        host: {
                            **client,
                            "ovms_client_data_dir": str(site.root / host),
                            "ovms_client_container_prefix": f"ovms-rt-{site.ident}-{host}",
                        }
                        for host in ("cam-a", "cam-b")
                    }
                },
            },
        }
    }


def _remove_everything(site: Site) -> None:
    """Whatever a failed run left: the test's containers and networks (by their unique names)."""
    found = docker("ps", "-aq", "--filter", f"name=ovms-rt-{site.ident}", check=False).stdout.split()
    if found:
        docker("rm", "-f", *found, check=False)
    for network in (f"ovms-rt-{site.ident}", f"ovms-rt-{site.ident}-internal"):
        docker("network", "rm", network, check=False)


@pytest.fixture
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    if not engine_available():
        pytest.skip("no Docker engine")
    missing = [i for i in IMAGES if not image_exists(i)]
    if missing:
        pytest.skip(f"images not built: {', '.join(missing)} (launcher images build)")
    root = Path(tmp_path_factory.mktemp("remote"))
    site = Site(root=root, ident=uuid.uuid4().hex[:8], port=free_port())
    site.inventory.write_text(yaml.safe_dump(_inventory(site), sort_keys=False))
    try:
        yield site
    finally:
        site.launcher("destroy", "-i", str(site.inventory), "--json", timeout=300)
        _remove_everything(site)
        # root-owned files of the deploy (results of uid 5002, keys of uid 5001)
        shutil.rmtree(root, ignore_errors=True)


def _last_stats(path: Path) -> dict:
    lines = path.read_text().splitlines() if path.exists() else []
    return json.loads(lines[-1]) if lines else {}


def _wait(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(1)
    raise AssertionError(f"timed out waiting for {what}")


def _status_via_tls(site: Site, cert_dir: Path) -> dict:
    """The collection's module ovms_probe run by ansible-core on the controller (as the status play
    runs it) with the client certificate of `cert_dir`: its result."""
    args = {
        "address": f"127.0.0.1:{site.port}",
        "ca_path": str(site.certs / "ca-bundle.pem"),
        "client_cert": str(cert_dir / "client.pem"),
        "client_key": str(cert_dir / "client.key"),
        "models": ["person-detection"],
    }
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "ansible"), "localhost", "-o", "-m", "ovms.edge.ovms_probe",
         "-a", json.dumps(args)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**site.env(), "ANSIBLE_COLLECTIONS_PATH": str(content().collections_path),
             "ANSIBLE_LOCALHOST_WARNING": "false", "ANSIBLE_INVENTORY_UNPARSED_WARNING": "false"},
    )  # fmt: skip
    assert proc.returncode == 0 and "SUCCESS" in proc.stdout, proc.stdout + proc.stderr
    return json.loads(proc.stdout.split("=>", 1)[1])


def _results(events: list[dict], play: str, task: str) -> dict[str, str]:
    """host -> outcome (ok, skipped, failed, ...) of a task in a play."""
    found = {}
    for event in events:
        data = event.get("event_data", {})
        kind = event["event"]
        finished = kind.startswith("runner_on_") and kind != "runner_on_start"
        if finished and data.get("play") == play and data.get("task") == task:
            found[data["host"]] = kind.removeprefix("runner_on_")
    return found


def _batches(events: list[dict], play: str) -> int:
    """How many batches ran a play: Ansible starts the play's first task once per batch (`serial`)."""
    starts = [e["event_data"] for e in events if e["event"] == "playbook_on_task_start"]
    mine = [data["task"] for data in starts if data.get("play") == play]
    return mine.count(mine[0]) if mine else 0


def _hosts_in_order(events: list[dict], play: str) -> list[str]:
    order: list[str] = []
    for event in events:
        host = event.get("event_data", {}).get("host")
        if event["event_data"].get("play") == play and host and host not in order:
            order.append(host)
    return order


def test_remote_deploy_over_mtls_on_localhost(site: Site) -> None:
    generated = site.launcher("certs", "generate", "--dir", str(site.certs), "-i", str(site.inventory))
    assert generated.returncode == 0, generated.stdout + generated.stderr
    assert (site.certs / "clients" / "launcher" / "client.pem").is_file()

    code, summary = site.run("deploy", "-e", "ovms_server_image=ovms-launcher/ovms-double:dev")
    assert code == 0, json.dumps(summary, indent=1)[-4000:]

    # OVMS: no published port, only the internal network; the proxy: only the TLS port, on loopback
    server, proxy = inspect(site.server), inspect(site.proxy)
    assert not server["HostConfig"].get("PortBindings")
    assert list(server["NetworkSettings"]["Networks"]) == [f"ovms-rt-{site.ident}-internal"]
    assert proxy["HostConfig"]["PortBindings"] == {
        f"{site.port}/tcp": [{"HostIp": "127.0.0.1", "HostPort": str(site.port)}]
    }
    assert proxy["Config"]["User"] == "5001:5001" and proxy["HostConfig"]["ReadonlyRootfs"]
    for host in ("cam-a", "cam-b"):
        env = inspect(site.client(host))["Config"]["Env"]
        assert f"OVMS_ADDRESS={site.proxy}:{site.port}" in env
        assert "OVMS_TLS_CERT=/tls/client.pem" in env
        detections = site.results(host) / "detections.jsonl"
        assert '"person"' in detections.read_text(), f"{host} has no person detection"

    # the first deploy: the Server play does not wait for the model (the clients start while it
    # loads), the Verify play does; no config reload right after the server container was created
    first = site.last_deploy_events()
    waited = _results(first, "Server", "Wait until every model version is AVAILABLE")
    assert waited == {"rt-server": "skipped"}
    assert _results(first, "Verify", "Wait for the model versions to be AVAILABLE") == {"rt-server": "ok"}
    assert _results(first, "Server", "Reload OVMS configuration").get("rt-server") in (None, "skipped")
    assert _batches(first, "Client") == 1

    # status through the TLS port with the controller's own certificate
    code, status = site.run("status")
    assert code == 0
    server_row = next(h for h in status["hosts"] if h["host"] == "rt-server")
    assert server_row["models"] == {"person-detection": {"1": "AVAILABLE"}}
    assert "(mTLS)" in server_row["endpoint"]
    # the module ovms_probe read /metrics through the proxy (twice, ovms_server_status_interval apart)
    assert "person-detection" in server_row["metrics"], server_row

    # a re-deploy as a rolling update, one host at a time: the Server play waits for AVAILABLE before
    # the next play, each client host is its own batch, in inventory order; idempotent: nothing changes
    code, rolled = site.run(
        "deploy", "-e", "ovms_server_image=ovms-launcher/ovms-double:dev", "-e", "ovms_deploy_serial=1"
    )
    assert code == 0, json.dumps(rolled, indent=1)[-4000:]
    assert {h["host"]: h["changed"] for h in rolled["hosts"]} == {"rt-server": 0, "cam-a": 0, "cam-b": 0}
    events = site.last_deploy_events()
    assert _results(events, "Server", "Wait for the model versions to be AVAILABLE") == {"rt-server": "ok"}
    assert _batches(events, "Client") == 2 and _hosts_in_order(events, "Client") == ["cam-a", "cam-b"]
    assert _batches(events, "Verify") == 3

    # revoke cam-b, deploy the CRL: cam-b is refused, cam-a keeps working
    kept = site.root / "cam-b-cert"
    shutil.copytree(site.certs / "clients" / "cam-b", kept)
    proxy_started = proxy["State"]["StartedAt"]
    revoked = site.launcher("certs", "revoke", "--dir", str(site.certs), "cam-b", "--kind", "client")
    assert revoked.returncode == 0, revoked.stdout + revoked.stderr
    errors_before = int(_last_stats(site.results("cam-b") / "stats.jsonl").get("errors") or 0)
    code, after = site.run("deploy", "-e", "ovms_server_image=ovms-launcher/ovms-double:dev")
    # cam-b has no certificate on the controller any more: that host fails, naming the fix; the
    # others are deployed (the CRL reaches the server)
    rows = {h["host"]: h for h in after["hosts"]}
    assert code == 1 and rows["cam-b"]["status"] != "ok"
    assert "launcher certs generate" in json.dumps(rows["cam-b"]["failure"])
    assert rows["rt-server"]["status"] == "ok" and rows["cam-a"]["status"] == "ok"
    assert inspect(site.proxy)["State"]["StartedAt"] == proxy_started  # reloaded, not restarted

    # the module succeeds either way: a refused certificate is an error of the status, not of the task
    refused = _status_via_tls(site, kept)
    assert "400" in refused["errors"].get("person-detection", ""), refused
    assert refused["models"] == {} and refused["metrics_error"]
    accepted = _status_via_tls(site, site.certs / "clients" / "cam-a")
    assert accepted["errors"] == {} and accepted["models"] == {"person-detection": {"1": "AVAILABLE"}}

    # the revoked client (still running with its old certificate) now only sees errors
    _wait(
        lambda: int(_last_stats(site.results("cam-b") / "stats.jsonl").get("errors") or 0) > errors_before,
        90,
        "cam-b's stats to count errors",
    )
    size = (site.results("cam-a") / "detections.jsonl").stat().st_size
    _wait(
        lambda: (site.results("cam-a") / "detections.jsonl").stat().st_size > size,
        30,
        "cam-a to keep producing detections",
    )

    code, _ = site.run("destroy")
    assert code == 0
    for name in (site.server, site.proxy, site.client("cam-a"), site.client("cam-b")):
        assert docker("inspect", name, check=False).returncode != 0, f"{name} survived destroy"
