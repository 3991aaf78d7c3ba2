"""Reliability of deploys on three real hosts (issue 8): an unreachable host, a model version rolled out
while the cameras stream, and damaged models in the controller cache.

One deployment for the module (host1 server behind the mTLS proxy, host2 and host3 clients). The
launcher runs with a private copy of the controller cache (`OVMS_LAUNCHER_CACHE`), so the tests can
add and damage prepared models without touching the real cache. In file order:

1. host3 is taken off the network and the first deploy runs: host1 and host2 complete, the deploy exits
   1 and its summary names host3 as unreachable; host3 returns and the same deploy completes it. (That
   second run is the deployment the other tests use: two full deploys in all.)
2. Version 2 of person-detection is added to a models manifest, prepared and deployed to host1 alone
   while both clients stream: no failed request, `launcher status` shows v2 AVAILABLE and v1 END (the
   default policy, latest with num_versions 1).
3. A new version 3 in the cache with a truncated model.bin and a model.xml whose checksum does not match:
   the deploy fails for host1 naming the model, the version and, per file, both checksums; v2 keeps
   serving; no folder for version 3 appears on host1.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from launcher.paths import cache_dir
from multihost.conftest import LAYOUT
from testbed import modelcache, netfault
from testbed import remote as rm
from testbed.harness import Harness, Host
from testbed.launcher_cli import Launcher, LauncherRun

pytestmark = [pytest.mark.reliability]

SERVER, CLIENT1, CLIENT2 = "host1", "host2", "host3"
MODEL = PROFILE = "person-detection"
INSTANCE = f"{PROFILE}-1"
CLIENTS = (CLIENT1, CLIENT2)
SERVER_CONTAINER = "ovms-server"
SERVER_MODELS = "/var/lib/ovms-launcher/server/models"
DEPLOY = ["-e", "ovms_server_image=ovms-launcher/ovms-double:dev", "--json"]
ONLY_SERVER = ["--limit", SERVER]


def group_vars(media_dir: Path) -> dict:
    return rm.group_vars(media_dir)


@dataclass
class Site:
    harness: Harness
    workdir: Path
    cache: Path  # the private controller cache the launcher uses
    inventory: Path
    launcher: Launcher
    deployed: bool = False

    def host(self, name: str) -> Host:
        return self.harness.host(name)

    def deploy(self, extra: list[str] | None = None) -> LauncherRun:
        return self.launcher.run(["deploy", "-i", str(self.inventory), *DEPLOY, *(extra or [])])

    def require_deployed(self) -> None:
        if not self.deployed:
            pytest.skip("the module's deployment failed (see test_unreachable_client_host_*)")

    def diagnostics(self) -> str:
        return rm.diagnostics(self.harness.hosts)


@pytest.fixture(scope="module")
def site(multihost: Harness, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    workdir = tmp_path_factory.mktemp("reliability-models")
    # the real cache must hold the prepared model and the sample (seconds when it does)
    prepare = Launcher(workdir / "certs", workdir / "runs")
    media = rm.prepare_inputs(prepare, workdir, (MODEL,))
    cache = modelcache.populate(workdir / "cache", cache_dir(), [MODEL])
    launcher = Launcher(workdir / "certs", workdir / "runs", {"OVMS_LAUNCHER_CACHE": str(cache)})
    inventory = multihost.inventory(workdir / "hosts.yml", LAYOUT, group_vars=group_vars(media))
    state = Site(multihost, workdir, cache, inventory, launcher)
    try:
        yield state
    finally:
        for host in multihost.hosts:  # whatever a failed test left: every host back on the network
            netfault.reconnect(multihost, host)
        # --purge: the next module must not find this module's version 2 on host1
        launcher.run(["destroy", "-i", str(inventory), "--purge", "--yes", "--json"])


# -- what the hosts say ----------------------------------------------------------------------------
def jsonl(host: Host, path: str, start_line: int = 1) -> list[dict[str, Any]]:
    """Complete JSON lines of a file on the host from line `start_line` (1-based)."""
    return rm.json_lines(host, path, f"+{start_line}")


def detections_path() -> str:
    return f"{rm.results_dir(INSTANCE)}/detections.jsonl"


def last_stats(host: Host) -> dict[str, Any]:
    lines = jsonl(host, f"{rm.results_dir(INSTANCE)}/stats.jsonl")
    return lines[-1] if lines else {}


def wait_for_new_person(host: Host, after_line: int, timeout: float = 90) -> list[dict[str, Any]]:
    """Person detections written after line `after_line` of the client's detections.jsonl (results of
    an earlier deployment on the host stay in the file: they do not count)."""
    return wait_for(
        f"a person detected by {host.name}",
        lambda: rm.person_detections(jsonl(host, detections_path(), after_line + 1)),
        timeout=timeout,
    )


def wait_for(what: str, probe: Callable[[], Any], timeout: float, interval: float = 2.0) -> Any:
    """probe()'s first truthy answer, polled until `timeout` seconds have passed."""
    deadline = time.monotonic() + timeout
    while True:
        answer = probe()
        if answer:
            return answer
        if time.monotonic() > deadline:
            raise AssertionError(
                f"timed out after {timeout:.0f}s waiting for {what} (last answer: {answer!r})"
            )
        time.sleep(interval)


def served_versions(server: Host) -> dict[str, str]:
    """{version: state} of the model from the server's own REST status API (GET /v1/config), asked on
    the server host (OVMS's ports are published nowhere)."""
    address = server.ssh.run(
        ["docker", "inspect", "--format", "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}",
         SERVER_CONTAINER]
    ).stdout.split()[0]  # fmt: skip
    code = (
        "import json,urllib.request\n"
        f"print(urllib.request.urlopen('http://{address}:8000/v1/config', timeout=5).read().decode())\n"
    )
    status = json.loads(server.ssh.run(["python3", "-c", code]).stdout)
    return {e["version"]: e["state"] for e in status[MODEL]["model_version_status"]}


def server_model_dirs(server: Host) -> dict[str, list[str]]:
    """What the models folder of the server holds: version folders of the model, staging leftovers."""
    listing = {}
    for key, folder in (("versions", f"{SERVER_MODELS}/{MODEL}"), ("staging", f"{SERVER_MODELS}/.staging")):
        proc = server.ssh.run(["ls", "-A", folder], check=False)
        listing[key] = sorted(proc.stdout.split()) if proc.returncode == 0 else []
    return listing


@dataclass
class StreamMark:
    """Where a client's results stood at a moment: detections line count and cumulative stats."""

    lines: int
    errors: int
    frames: int


def mark(host: Host) -> StreamMark:
    stats = last_stats(host)
    return StreamMark(
        rm.line_count(host, detections_path()), int(stats.get("errors", 0)), int(stats.get("frames", 0))
    )


def assert_streamed_without_failures(site: Site, since: dict[str, StreamMark], after_ts: float) -> None:
    """Every client wrote a stats line after `after_ts` with more frames and no new error, and every
    detection record since the mark is a served frame ("ok") with a person in it."""
    for name in CLIENTS:
        host = site.host(name)
        stats = wait_for(
            f"a stats line of {name} after the change",
            lambda h=host: (s := last_stats(h)) and s.get("ts", 0) > after_ts and s,
            timeout=45,
        )
        before = since[name]
        assert stats["errors"] == before.errors == 0, (
            f"{name}: requests failed: {stats}\n{site.diagnostics()}"
        )
        assert stats["frames"] > before.frames, f"{name}: no frame served since the mark: {stats}"
        records = jsonl(host, detections_path(), before.lines + 1)
        failed = [r for r in records if r.get("status") != "ok"]
        assert records and not failed, f"{name}: {len(failed)} of {len(records)} frames failed: {failed[:3]}"
        assert rm.person_detections(records), f"{name}: no person detected since the mark"


# -- the tests -------------------------------------------------------------------------------------
def test_unreachable_client_host_fails_alone_and_a_rerun_completes_it(site: Site):
    site.launcher.ok(["certs", "generate", "-i", str(site.inventory), "--dir", str(site.workdir / "certs")])
    gone = site.host(CLIENT2)
    earlier = {name: rm.line_count(site.host(name), detections_path()) for name in CLIENTS}
    with netfault.unreachable(site.harness, gone):
        run = site.deploy()
        assert run.returncode == 1, run.describe()
        assert run.summary["failed_hosts"] == [CLIENT2], run.describe()
        row = run.host(CLIENT2)
        assert row["status"] == "unreachable" and row["unreachable"] >= 1, row
        assert row["failure"] and row["failure"]["unreachable"] and row["failure"]["message"], row
        assert f"{CLIENT2} (unreachable)" in run.summary["message"], run.summary["message"]
        for name in (SERVER, CLIENT1):
            assert run.host(name)["status"] == "ok", run.describe()
        # the hosts that were reachable got their whole part: server, proxy, a streaming client
        wait_for_new_person(site.host(CLIENT1), earlier[CLIENT1])
    rerun = site.deploy()
    assert rerun.returncode == 0, rerun.describe() + "\n" + site.diagnostics()
    assert rerun.summary["failed_hosts"] == [], rerun.describe()
    assert rerun.changed()[CLIENT2] > 0 and rerun.changed()[SERVER] == 0, rerun.describe()
    wait_for_new_person(gone, earlier[CLIENT2])
    site.deployed = True


def test_new_model_version_rolls_out_while_clients_stream(site: Site):
    site.require_deployed()
    server = site.host(SERVER)
    assert served_versions(server) == {"1": "AVAILABLE"}
    for host in map(site.host, CLIENTS):
        wait_for(f"{host.name} streaming", lambda h=host: last_stats(h).get("frames"), timeout=45)
    # the documented rollout: the new version in the manifest, prepared, deployed to the server
    manifest = modelcache.manifest_with_version(site.workdir / "models-v2.yaml", MODEL, 2)
    site.launcher.ok(["models", "prepare", "--manifest", str(manifest), MODEL], timeout=600)
    assert (site.cache / "models" / MODEL / "2" / "checksums.sha256").is_file()

    since = {name: mark(site.host(name)) for name in CLIENTS}
    run = site.deploy(ONLY_SERVER)
    switched = time.time()
    assert run.returncode == 0, run.describe() + "\n" + site.diagnostics()
    # OVMS's default policy (latest, num_versions 1): v2 serves, v1 is unloaded
    rolled = {"1": "END", "2": "AVAILABLE"}
    wait_for("v2 AVAILABLE and v1 END", lambda: served_versions(server) == rolled, timeout=30)
    status = site.launcher.ok(["status", "-i", str(site.inventory), "--json"])
    assert status.host(SERVER)["models"][MODEL] == rolled, status.host(SERVER)
    assert_streamed_without_failures(site, since, switched)


def test_damaged_model_in_the_cache_is_refused_and_the_served_version_keeps_serving(site: Site):
    site.require_deployed()
    server = site.host(SERVER)
    before_states = served_versions(server)
    latest = max(int(v) for v, state in before_states.items() if state == "AVAILABLE")
    before_dirs = server_model_dirs(server)
    # A new version 3 in the (private) cache with both kinds of damage, refused by one deploy: a
    # truncated model.bin (a copy cut short) and a model.xml of the right size with other bytes (a
    # checksum mismatch: bit rot, or another model's file under this name).
    folder = modelcache.copy_version(site.cache, MODEL, latest, 3)
    try:
        modelcache.truncate(folder / "model.bin")
        modelcache.corrupt(folder / "model.xml")
        sums = modelcache.read_sums(folder)
        damaged = {
            name: (sums[name], modelcache.sha256(folder / name)) for name in ("model.xml", "model.bin")
        }
        assert all(expected != actual for expected, actual in damaged.values())
        since = {name: mark(site.host(name)) for name in CLIENTS}
        started = time.time()
        run = site.deploy(ONLY_SERVER)
    finally:
        shutil.rmtree(folder)
    assert run.returncode == 1, run.describe()
    assert run.summary["failed_hosts"] == [SERVER], run.describe()
    failure = run.host(SERVER)["failure"]
    message = failure["message"]
    assert f"model {MODEL} version 3" in message, failure
    for name, (expected, actual) in damaged.items():
        assert f"{name}: expected sha256 {expected}, actual sha256 {actual}" in message, failure
    assert "launcher models prepare" in message, failure
    # nothing reached the server: no folder for version 3, no staging leftover, same states
    assert "3" not in before_dirs["versions"]
    assert server_model_dirs(server) == before_dirs, server_model_dirs(server)
    assert served_versions(server) == before_states
    assert_streamed_without_failures(site, since, started)
