"""The issue's end to end on three real hosts: one OVMS server (host1) behind the mTLS proxy and two
camera clients (host2, host3), deployed by the launcher over SSH. Both speak KServe v2 over mTLS;
host3 sends each frame as one JPEG (the remote setup's bandwidth), host2 raw tensors. host3 also runs
the RTSP camera simulator, published on its address like an IP camera, and host2's client reads it:
a camera on one host, its client on a second, the server on a third. host2 also runs the face-mesh
cascade (face detection -> face landmarks -> iris landmarks, every crop a request of its own) on the
same camera, over the same mTLS proxy. Monitoring is on: Prometheus on host3 scrapes the server through
its proxy and each client host through its metrics gateway, all over mTLS with host3's certificate.

The tests run in file order on one deployment (module fixture `remote`): deploy → detections through
mTLS → the cascade's nested results → status → idempotent re-deploy → every Prometheus target up
over mTLS, a scrape without a certificate refused → network and TLS refusals → revocation (host3's
certificate: its Prometheus is refused too) → a remote profile copy over HTTP (and a wrong sha256) →
destroy.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tarfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

from launcher.inventory import SERVERS_GROUP
from multihost.conftest import MONITORING_LAYOUT
from testbed import remote as rm
from testbed.harness import Harness, Host
from testbed.launcher_cli import Launcher, LauncherRun
from testbed.paths import PROJECT_ROOT

PROXY_ROLE = PROJECT_ROOT / "roles" / "ovms_tls_proxy"
pytestmark = pytest.mark.xfail(
    not PROXY_ROLE.is_dir(),
    reason="remote mode (roles/ovms_tls_proxy) has not landed yet",
    run=False,
    strict=True,
)

SERVER, CLIENT1, CLIENT2 = "host1", "host2", "host3"
MODEL = PROFILE = "person-detection"
INSTANCE = f"{PROFILE}-1"
CLIENT_CONTAINER = f"ovms-client-{INSTANCE}"
SERVER_CONTAINER = "ovms-server"
PROXY_CONTAINER = "ovms-server-tls"
TLS_PORT = 9443
OVMS_PORTS = (9000, 8000)
HTTP_PORT = 8088
DEPLOY = ["-e", "ovms_server_image=ovms-launcher/ovms-double:dev", "--json"]
# Prometheus on host3 (a client and camera host too), every host monitored; scrapes and rule
# evaluations every 3 s (the shipped 15 s are for stores)
MONITORING_HOST, GATEWAY_PORT = CLIENT2, 9444
MONITORING = {
    "ovms_monitoring_enabled": True,
    "ovms_monitoring_scrape_interval": "3s",
    "ovms_monitoring_evaluation_interval": "3s",
}
# the client host that sends JPEG frames
JPEG_CLIENT = CLIENT2
JPEG_VARS = {JPEG_CLIENT: {"ovms_client_env": {"CLIENT_ENCODING": "jpeg"}}}
# the camera host and the client host reading it
CAMERA_HOST, CAMERA_CLIENT = CLIENT2, CLIENT1
CAMERA_PORT = 8554
# A cascade profile over mTLS on the camera's client (host3 sends JPEG frames, which stages of float
# tensors do not take): its stage models are served beside the person detector.
CASCADE, CASCADE_CLIENT = "face-mesh", CAMERA_CLIENT
CASCADE_INSTANCE = f"{CASCADE}-1"
CASCADE_MODELS = ("face-detection", "face-landmarks", "iris-landmarks")
FACE_POINTS, EYE_POINTS = 468, 71


def group_vars(media_dir: Path) -> dict:
    variables = rm.group_vars(media_dir)
    servers = variables[SERVERS_GROUP]
    servers["ovms_server_models"] = [*servers["ovms_server_models"], *({"name": m} for m in CASCADE_MODELS)]
    variables["all"] = dict(MONITORING)
    return variables


@dataclass
class Remote:
    harness: Harness
    workdir: Path
    certs: Path
    inventory: Path
    launcher: Launcher
    first_deploy: LauncherRun | None = None
    destroyed: bool = False
    notes: dict = field(default_factory=dict)

    def host(self, name: str):
        return self.harness.host(name)

    @property
    def tls_address(self) -> str:
        return f"{self.host(SERVER).ip}:{TLS_PORT}"

    @property
    def camera_url(self) -> str:
        return f"rtsp://{self.host(CAMERA_HOST).ip}:{CAMERA_PORT}/sample"

    def write_inventory(self, host_vars: dict | None = None) -> Path:
        camera = {
            # published on the harness network, like an IP camera on a store's LAN
            CAMERA_HOST: {**JPEG_VARS[CAMERA_HOST], "ovms_camera_bind_address": "0.0.0.0"},
            CAMERA_CLIENT: {
                "ovms_client_env": {"CLIENT_INPUT": self.camera_url},
                "ovms_client_profiles": [
                    {"name": PROFILE, "instances": 1},
                    {"name": CASCADE, "instances": 1},
                ],
            },
        }
        merged = {**JPEG_VARS, **camera}
        for host, variables in (host_vars or {}).items():
            merged[host] = {**merged.get(host, {}), **variables}
        return self.harness.inventory(
            self.inventory, MONITORING_LAYOUT, group_vars=group_vars(self.workdir / "media"), host_vars=merged
        )

    def deploy(self, extra: list[str] | None = None) -> LauncherRun:
        return self.launcher.run(["deploy", "-i", str(self.inventory), *DEPLOY, *(extra or [])])

    def require_deployed(self) -> None:
        if self.first_deploy is None or self.first_deploy.returncode != 0:
            pytest.skip("the first deploy failed (see test_deploy_runs_server_proxy_and_clients)")


@pytest.fixture(scope="module")
def remote(multihost: Harness, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Remote]:
    workdir = tmp_path_factory.mktemp("remote")
    launcher = Launcher(workdir / "certs", workdir / "runs")
    rm.prepare_inputs(launcher, workdir)
    state = Remote(multihost, workdir, workdir / "certs", workdir / "hosts.yml", launcher)
    state.write_inventory()
    try:
        yield state
    finally:
        server = state.notes.get("http")
        if server is not None:
            server.stop()
        if not state.destroyed:
            launcher.run(["destroy", "-i", str(state.inventory), "--json"])


def test_deploy_runs_server_proxy_and_clients(remote: Remote):
    remote.launcher.ok(["certs", "generate", "-i", str(remote.inventory), "--dir", str(remote.certs)])
    run = remote.deploy()
    remote.first_deploy = run
    assert run.returncode == 0, run.describe() + "\n" + rm.diagnostics(remote.harness.hosts)
    assert {h["host"] for h in run.summary["hosts"]} == {SERVER, CLIENT1, CLIENT2}

    server = remote.host(SERVER)
    for name in (SERVER_CONTAINER, PROXY_CONTAINER):
        info = rm.container(server, name)
        assert info and info["State"]["Running"], f"{name} is not running on {SERVER}"
    # only the TLS port is published on the server host; OVMS's own ports never are
    ovms = rm.container(server, SERVER_CONTAINER)
    assert not any(ovms["HostConfig"]["PortBindings"] or {}), ovms["HostConfig"]["PortBindings"]
    proxy_ports = rm.container(server, PROXY_CONTAINER)["HostConfig"]["PortBindings"]
    assert f"{TLS_PORT}/tcp" in proxy_ports, proxy_ports


@pytest.mark.parametrize("client", [CLIENT1, CLIENT2])
def test_each_client_host_detects_persons_through_mtls(remote: Remote, client: str):
    remote.require_deployed()
    host = remote.host(client)
    info = rm.container(host, CLIENT_CONTAINER)
    assert info and info["State"]["Running"], f"{CLIENT_CONTAINER} is not running on {client}"
    env = rm.container_env(info)
    assert env["OVMS_ADDRESS"] == remote.tls_address
    assert {"OVMS_TLS_CA", "OVMS_TLS_CERT", "OVMS_TLS_KEY"} <= set(env), env
    persons = rm.wait_for_person(host, INSTANCE)
    assert persons, f"no person detection in {client}'s results\n" + rm.diagnostics([host])
    assert max(d["score"] for d in persons) > 0.8
    encoding = "jpeg" if client == JPEG_CLIENT else "raw"
    assert env.get("CLIENT_ENCODING", "raw") == encoding, env
    logs = host.ssh.run(["docker", "logs", CLIENT_CONTAINER], check=False)
    assert f"kserve API, {encoding} frames" in logs.stdout + logs.stderr


def _cascade_records(host: Host, wanted: int = 5, timeout: float = 90) -> list[dict]:
    """The latest ok face-mesh records holding a face, waiting (bounded) until there are `wanted`."""
    deadline = time.monotonic() + timeout
    while True:
        records = [
            r
            for r in rm.detection_records(host, CASCADE_INSTANCE, lines=20)
            if r.get("status") == "ok" and r.get("detections")
        ]
        if len(records) >= wanted or time.monotonic() > deadline:
            return records
        time.sleep(2)


@pytest.mark.models
def test_a_cascade_over_mtls_nests_landmarks_and_irises(remote: Remote):
    remote.require_deployed()
    host = remote.host(CASCADE_CLIENT)
    info = rm.container(host, f"ovms-client-{CASCADE_INSTANCE}")
    assert info and info["State"]["Running"], f"{CASCADE_INSTANCE} is not running on {CASCADE_CLIENT}"
    env = rm.container_env(info)
    assert env["OVMS_ADDRESS"] == remote.tls_address and "OVMS_TLS_CERT" in env, env
    records = _cascade_records(host)
    assert len(records) >= 5, f"no face in {CASCADE_CLIENT}'s face-mesh results\n" + rm.diagnostics([host])
    for record in records:
        for face in record["detections"]:
            # each face carries its mesh, and each mesh its two eyes' irises: three models, nested
            (mesh,) = face["stages"]["face-landmarks"]
            assert len(mesh["landmarks"]) == FACE_POINTS, (record["frame"], mesh.get("error"))
            irises = mesh["stages"]["iris-landmarks"]
            assert len(irises) == 2 and len({i["region"] for i in irises}) == 2, irises
            assert all(len(i["landmarks"]) == EYE_POINTS and len(i["iris"]) == 2 for i in irises), irises
    stats = rm.wait_for_stats(host, CASCADE_INSTANCE, lambda s: s.get("frames", 0) > 0)
    stages = stats[-1]["stages"]
    assert list(stages) == list(CASCADE_MODELS), stages
    assert all(s["requests"] > 0 and s["failures"] == 0 for s in stages.values()), stages


def test_status_shows_models_and_clients_of_every_host(remote: Remote):
    remote.require_deployed()
    run = remote.launcher.ok(["status", "-i", str(remote.inventory), "--json"])
    server = run.host(SERVER)
    assert "mTLS" in str(server["endpoint"]), server
    assert MODEL in server["models"], server
    assert "AVAILABLE" in json.dumps(server["models"][MODEL]), server["models"]
    # OVMS's /metrics read through the proxy with the controller's certificate: both cameras' frames
    served = server["metrics"][MODEL]
    assert served["rate"] and served["rate"] > 0, served
    assert served["failures"] == 0 and served["inference_ms"] > 0, served
    for client in (CLIENT1, CLIENT2):
        row = run.host(client)
        names = {c["name"] for c in row["clients"]}
        assert INSTANCE in names, row
        stats = next(c for c in row["clients"] if c["name"] == INSTANCE)
        assert stats["frames"] and stats["frames"] > 0, stats
        assert any(c["name"] == CLIENT_CONTAINER and c["state"] == "running" for c in row["containers"]), row


@pytest.mark.sources
def test_a_camera_on_another_host_feeds_a_client(remote: Remote):
    remote.require_deployed()
    client = remote.host(CAMERA_CLIENT)
    records = rm.wait_for_stats(client, INSTANCE, lambda s: s.get("frames", 0) >= 100)
    assert records, f"no stats from {CAMERA_CLIENT}\n" + rm.diagnostics([client])
    source = records[-1]["sources"][0]
    assert source["input"] == remote.camera_url and source["state"] == "reading", records[-1]
    assert records[-1]["fps"] > 10, records[-1]
    run = remote.launcher.ok(["status", "-i", str(remote.inventory), "--json"])
    camera_host = run.host(CAMERA_HOST)
    assert "camera" in camera_host["roles"], camera_host
    (camera,) = camera_host["cameras"]
    assert camera["state"] == "running", camera
    (reader,) = (c for c in run.host(CAMERA_CLIENT)["clients"] if c["name"] == INSTANCE)
    assert reader["sources"][0]["input"] == remote.camera_url, reader


def test_redeploy_changes_nothing(remote: Remote):
    remote.require_deployed()
    run = remote.deploy()
    assert run.returncode == 0, run.describe() + "\n" + rm.diagnostics(remote.harness.hosts)
    assert run.changed() == {SERVER: 0, CLIENT1: 0, CLIENT2: 0}, run.describe()


def _targets(remote: Remote) -> list[dict]:
    data = rm.prometheus(remote.host(MONITORING_HOST), "targets", {"state": "active"})
    return data["activeTargets"]


def _query(remote: Remote, expr: str) -> list[dict]:
    return rm.prometheus(remote.host(MONITORING_HOST), "query", {"query": expr})["result"]


@pytest.mark.observability
def test_prometheus_scrapes_every_host_over_mtls(remote: Remote):
    remote.require_deployed()
    host = remote.host(MONITORING_HOST)

    def all_up():
        targets = _targets(remote)
        jobs = {t["labels"]["job"] for t in targets}
        wanted = {"ovms_server", "ovms_client", "ovms_node", "ovms_nginx", "ovms_tls_expiry"}
        return targets if wanted <= jobs and all(t["health"] == "up" for t in targets) else None

    try:
        targets = rm.wait_for_prometheus(host, "every target up", all_up)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{rm.diagnostics(remote.harness.hosts)}") from None
    # the server through its proxy, each client host's containers through its gateway: all https
    remote_scrapes = [
        t for t in targets if t["labels"]["job"] in ("ovms_server", "ovms_client", "ovms_nginx")
    ]
    assert remote_scrapes and all(t["scrapeUrl"].startswith("https://") for t in remote_scrapes), (
        remote_scrapes
    )
    containers = {
        (t["labels"]["host"], t["labels"]["container"])
        for t in targets
        if t["labels"]["job"] == "ovms_client"
    }
    assert {(CLIENT1, CLIENT_CONTAINER), (CLIENT2, CLIENT_CONTAINER)} <= containers, containers

    rate = rm.wait_for_prometheus(
        host, "a request rate above 0",
        lambda: _query(remote, 'sum(rate(ovms_requests_success{method="ModelInfer"}[1m])) > 0'),
    )  # fmt: skip
    assert float(rate[0]["value"][1]) > 0
    # the person detector's streams at 14 FPS or more on both client hosts
    fast = rm.wait_for_prometheus(
        host, "every person-detection stream at 14 FPS",
        lambda: {r["metric"]["host"] for r in _query(remote, f'ovms_client_fps{{profile="{PROFILE}"}} >= 14')}
        >= {CLIENT1, CLIENT2},
        timeout=60,
    )  # fmt: skip
    assert fast
    expiry = _query(remote, "probe_ssl_earliest_cert_expiry - time()")
    assert expiry and all(float(r["value"][1]) > 86400 for r in expiry), expiry
    firing = _query(remote, 'ALERTS{alertstate="firing"}')
    assert firing == [], firing


@pytest.mark.observability
def test_a_scrape_without_the_monitoring_certificate_is_refused(remote: Remote):
    remote.require_deployed()
    other = remote.workdir / "other-ca-monitoring"
    remote.launcher.ok(["certs", "generate", "--dir", str(other), "--client", MONITORING_HOST])
    bundle = remote.certs / "ca-bundle.pem"
    own = remote.certs / "clients" / MONITORING_HOST
    stranger = other / "clients" / MONITORING_HOST
    for host, port, path in ((CLIENT1, GATEWAY_PORT, "/sd"), (SERVER, TLS_PORT, "/metrics")):
        url = f"https://{remote.host(host).ip}:{port}{path}"
        good = requests.get(url, verify=bundle, cert=(own / "client.pem", own / "client.key"), timeout=10)
        assert good.status_code == 200, (url, good.status_code)
        for cert in (None, (stranger / "client.pem", stranger / "client.key")):
            refused = requests.get(url, verify=bundle, cert=cert, timeout=10)
            assert refused.status_code == 400, (url, cert, refused.status_code)
            assert "ovms_" not in refused.text and "targets" not in refused.text, refused.text[:300]
    # a client host's own certificate (same CA, not a monitoring host) reads no metrics: 403
    camera = remote.certs / "clients" / CLIENT1
    for host, port, path in ((CLIENT1, GATEWAY_PORT, "/sd"), (SERVER, TLS_PORT, "/metrics")):
        url = f"https://{remote.host(host).ip}:{port}{path}"
        other = requests.get(
            url, verify=bundle, cert=(camera / "client.pem", camera / "client.key"), timeout=10
        )
        assert other.status_code == 403, (url, other.status_code)
    # the gateway publishes only its mTLS port; the clients' own metrics port is never published
    gateway = rm.container(remote.host(CLIENT1), "ovms-monitoring-gateway")
    assert gateway and list(gateway["HostConfig"]["PortBindings"]) == [f"{GATEWAY_PORT}/tcp"], gateway
    assert rm.tcp_connect(remote.host(MONITORING_HOST), remote.host(CLIENT1).ip, 9464) != "open"


def test_client_host_reaches_only_the_tls_port(remote: Remote):
    remote.require_deployed()
    client, server_ip = remote.host(CLIENT1), remote.host(SERVER).ip
    for port in OVMS_PORTS:
        assert rm.tcp_connect(client, server_ip, port) != "open", f"OVMS port {port} reachable from {CLIENT1}"
    assert rm.tcp_connect(client, server_ip, TLS_PORT) == "open"


def test_server_host_users_other_than_root_cannot_reach_ovms_around_the_proxy(remote: Remote):
    """Any local user could connect to a container's address on a Docker bridge, internal or not:
    the server role's OUTPUT rule (ovms_server_local_access: root) leaves that to root."""
    remote.require_deployed()
    server = remote.host(SERVER)
    template = "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}"
    address = server.ssh.run(["docker", "inspect", "--format", template, SERVER_CONTAINER]).stdout.strip()
    for port in OVMS_PORTS:
        assert rm.tcp_connect(server, address, port) == "open"
        assert rm.tcp_connect(server, address, port, user="nobody") == "ConnectionRefusedError"


def test_tls_port_refuses_no_certificate_and_another_ca(remote: Remote):
    remote.require_deployed()
    other = remote.workdir / "other-ca"
    remote.launcher.ok(["certs", "generate", "--dir", str(other), "--client", CLIENT1])
    own = remote.certs / "clients" / CLIENT1
    rm.push_probe(
        remote.host(CLIENT1),
        {
            "ca-bundle.pem": remote.certs / "ca-bundle.pem",
            "client.pem": own / "client.pem",
            "client.key": own / "client.key",
            "other.pem": other / "clients" / CLIENT1 / "client.pem",
            "other.key": other / "clients" / CLIENT1 / "client.key",
        },
    )
    client = remote.host(CLIENT1)
    good = rm.probe(client, remote.tls_address, MODEL, cert="client.pem", key="client.key")
    assert good["ok"] and "AVAILABLE" in good["states"].values(), good
    none = rm.probe(client, remote.tls_address, MODEL)
    assert rm.refused_by_proxy(none), none
    stranger = rm.probe(client, remote.tls_address, MODEL, cert="other.pem", key="other.key")
    assert rm.refused_by_proxy(stranger), stranger


def test_revoked_client_is_refused_while_the_other_keeps_working(remote: Remote):
    remote.require_deployed()
    kept = remote.workdir / "client2-revoked"
    shutil.copytree(remote.certs / "clients" / CLIENT2, kept)
    remote.launcher.ok(["certs", "revoke", CLIENT2, "--kind", "client", "--dir", str(remote.certs)])
    run = remote.deploy()
    # the server took the new CRL and client1 carried on; client2 has no certificate any more: its
    # part fails, clearly and alone (a failing host does not stop the others; the summary names it)
    assert run.host(SERVER)["status"] == "ok", run.describe()
    assert run.host(CLIENT1)["status"] == "ok", run.describe()
    assert run.summary["failed_hosts"] == [CLIENT2], run.describe()
    failure = json.dumps(run.host(CLIENT2)["failure"])
    assert "client.pem" in failure and "certs generate" in failure, failure

    client2 = remote.host(CLIENT2)
    rm.push_probe(
        client2,
        {"ca-bundle.pem": remote.certs / "ca-bundle.pem", "client.pem": kept / "client.pem",
         "client.key": kept / "client.key"},
    )  # fmt: skip
    refused = rm.probe(client2, remote.tls_address, MODEL, cert="client.pem", key="client.key")
    assert rm.refused_by_proxy(refused), refused

    client1 = remote.host(CLIENT1)
    own = remote.certs / "clients" / CLIENT1
    rm.push_probe(
        client1,
        {"ca-bundle.pem": remote.certs / "ca-bundle.pem", "client.pem": own / "client.pem",
         "client.key": own / "client.key"},
    )  # fmt: skip
    accepted = rm.probe(client1, remote.tls_address, MODEL, cert="client.pem", key="client.key")
    assert accepted["ok"], accepted
    before, after = rm.wait_for_growth(client1, INSTANCE)
    assert after > before, f"{CLIENT1}'s detections stopped at {before} lines after the revocation"
    assert rm.person_detections(rm.detection_records(client1, INSTANCE, lines=10))


@pytest.mark.observability
def test_the_revoked_monitoring_certificate_is_refused_after_the_deploy(remote: Remote):
    """host3's certificate (its clients' and its Prometheus's) was revoked and deployed by the test
    above: the server's proxy and host2's gateway now refuse Prometheus's scrapes."""
    remote.require_deployed()
    host = remote.host(MONITORING_HOST)

    def refused():
        jobs = ("ovms_server", "ovms_client")
        down = [
            t
            for t in _targets(remote)
            if t["labels"]["host"] in (SERVER, CLIENT1) and t["labels"]["job"] in jobs
        ]
        return down if down and all(t["health"] == "down" for t in down) else None

    down = rm.wait_for_prometheus(host, "the server's and host2's scrapes refused", refused, timeout=60)
    assert all("400" in t["lastError"] or "certificate" in t["lastError"] for t in down), down


def _profile_archive(folder: Path) -> tuple[Path, str]:
    """The project's person-detection profile, slightly changed (so the remote copy is recognisable),
    as p.tar.gz with the profile files at the archive's top level."""
    source = folder / "profile"
    shutil.copytree(PROJECT_ROOT / "profiles" / PROFILE, source)
    env = source / "profile.env"
    env.write_text(env.read_text() + "CLIENT_TARGET_FPS=12\n")
    archive = folder / "p.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for path in sorted(source.iterdir()):
            tar.add(path, arcname=path.name)
    return archive, hashlib.sha256(archive.read_bytes()).hexdigest()


def test_remote_profile_copy_over_http_and_a_wrong_sha256(remote: Remote):
    remote.require_deployed()
    share = remote.workdir / "share"
    share.mkdir()
    archive, digest = _profile_archive(share)
    server_host = remote.host(SERVER)
    server_host.ssh.run(["mkdir", "-p", "/root/mh-share"])
    server_host.ssh.put(archive, "/root/mh-share/p.tar.gz")
    http = rm.HttpServer(server_host, "/root/mh-share", HTTP_PORT)
    remote.notes["http"] = http
    http.start()

    def url_profile(sha256: str) -> dict:
        source = {"type": "url", "url": http.url("p.tar.gz"), "sha256": sha256}
        return {CLIENT1: {"ovms_client_profiles": [{"name": PROFILE, "instances": 1, "source": source}]}}

    # only client1 changes (and client2's certificate stays revoked): deploy to it alone
    only_client1 = ["--limit", CLIENT1]
    client1 = remote.host(CLIENT1)
    profile_dir = f"{rm.CLIENT_DATA}/profiles/{PROFILE}"
    remote.write_inventory(url_profile(digest))
    run = remote.deploy(only_client1)
    assert run.returncode == 0, run.describe()
    served = client1.ssh.run(["cat", f"{profile_dir}/profile.env"]).stdout
    assert "CLIENT_TARGET_FPS=12" in served, served
    good = rm.container(client1, CLIENT_CONTAINER)
    assert good and good["State"]["Running"]
    assert rm.wait_for_person(client1, INSTANCE)
    # the other client still runs the controller's copy
    other = remote.host(CLIENT2).ssh.run(["cat", f"{profile_dir}/profile.env"]).stdout
    assert "CLIENT_TARGET_FPS=12" not in other, other

    remote.write_inventory(url_profile("0" * 64))
    bad = remote.deploy(only_client1)
    assert bad.returncode != 0, bad.describe()
    assert bad.summary["failed_hosts"] == [CLIENT1], bad.describe()
    failure = json.dumps(bad.host(CLIENT1)["failure"]).lower()
    assert "sha256" in failure or "checksum" in failure, bad.describe()
    after = rm.container(client1, CLIENT_CONTAINER)
    assert after["Id"] == good["Id"] and after["State"]["StartedAt"] == good["State"]["StartedAt"]
    assert after["State"]["Running"]
    assert "CLIENT_TARGET_FPS=12" in client1.ssh.run(["cat", f"{profile_dir}/profile.env"]).stdout
    before, later = rm.wait_for_growth(client1, INSTANCE)
    assert later > before, f"{CLIENT1} stopped producing results after the failed deploy"
    http.stop()
    remote.write_inventory()


def test_destroy_removes_the_deployment_from_every_host(remote: Remote):
    remote.require_deployed()
    run = remote.launcher.run(["destroy", "-i", str(remote.inventory), "--json"])
    remote.destroyed = True
    assert run.returncode == 0, run.describe()
    for host in remote.harness.hosts:
        assert rm.managed_objects(host) == {"containers": [], "networks": []}, host.name
    rules = remote.host(SERVER).ssh.run(["iptables", "-S", "OUTPUT"]).stdout
    assert "ovms-launcher local-access" not in rules, rules
