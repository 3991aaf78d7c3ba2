"""Canary roll-outs by site and the drift report (issue 23) on the three DinD hosts, one deployment:
store-a = host1 (server) + host2 (its client, over mTLS), store-b = host3 (server and client on one
host). Each site is an inventory group (children of ovms_sites) setting ovms_site; store-b's servers
read their prepared models from a controller cache of their own (`ovms_models_cache_dir` in the site's
group vars), so a new version prepared there is a model version of that site alone. In file order:

1. `launcher deploy -e ovms_deploy_serial=1` runs one ansible-playbook per site: the events of the
   runs (OVMS_LAUNCHER_RUNS) show store-a's batch through its Verify play, successfully, before the
   first event of store-b's batch; both sites' clients then detect persons, store-b's from its own
   server.
2. `launcher diff` right after the roll-out: nothing would change (exit 0, `changed: false` in JSON),
   both sites listed.
3. Version 2 of person-detection appears in store-b's cache: `launcher diff` (report and JSON) exits 3
   and names exactly store-b's host (host3) with `models: person-detection v2`; store-a's hosts have no
   change.
4. A failing canary: a change for both sites (the clients' environment, which recreates every client
   container) together with a server image store-a's host cannot have (a registry that refuses the
   connection: the precheck's pull fails at once). The roll-out stops after batch 1 with a non-zero
   exit, names batch 2 (store-b) as not run, starts no run touching host3; host3's containers keep
   their IDs and start times and host3 still lacks version 2 (store-b's pending change not applied).

Cleaned up with `launcher destroy --purge -y`; the server images this module loads on host3 are
removed again, so later modules find the hosts as conftest left them, and store-b's controller cache
(a copy of the prepared models) is deleted.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from launcher.common_defaults import common_default
from launcher.inventory import CLIENTS_GROUP, SERVERS_GROUP
from launcher.paths import cache_dir
from testbed import modelcache
from testbed import remote as rm
from testbed.harness import Harness, Host
from testbed.launcher_cli import Launcher, LauncherRun

pytestmark = pytest.mark.fleet

MODEL = rm.MODEL
STORE_A, STORE_B = "store-a", "store-b"
SITES = {STORE_A: ["host1", "host2"], STORE_B: ["host3"]}
LAYOUT = {SERVERS_GROUP: ["host1", "host3"], CLIENTS_GROUP: ["host2", "host3"]}
INSTANCE = f"{rm.PROFILE}-1"
DOUBLE = "ovms-launcher/ovms-double:dev"
# refused at once on any host: nothing listens on port 1 of the host itself
UNREACHABLE_IMAGE = "localhost:1/ovms-canary/missing:never"
LABEL = "label=ovms-launcher.managed=true"
SERIAL = ["-e", "ovms_deploy_serial=1"]
NEW_VERSION = 2


@dataclass
class Fleet:
    harness: Harness
    workdir: Path
    inventory: Path
    media: Path
    cache_b: Path  # store-b's controller cache of prepared models
    launcher: Launcher
    runs: Path
    loaded_on_host3: list[str] = field(default_factory=list)
    first: LauncherRun | None = None

    def host(self, name: str) -> Host:
        return self.harness.host(name)

    def write_inventory(
        self, *, client_env: dict[str, str] | None = None, host_vars: dict[str, dict[str, Any]] | None = None
    ) -> None:
        """The harness inventory (the double as the servers' image) plus one group per site (children
        of ovms_sites) setting ovms_site, store-b's also its own models cache."""
        group_vars = rm.group_vars(self.media, client_env)
        group_vars[SERVERS_GROUP]["ovms_server_image"] = DOUBLE
        self.harness.inventory(self.inventory, LAYOUT, group_vars=group_vars, host_vars=host_vars)
        data = yaml.safe_load(self.inventory.read_text(encoding="utf-8"))
        site_vars: dict[str, dict[str, Any]] = {
            STORE_A: {"ovms_site": STORE_A},
            STORE_B: {"ovms_site": STORE_B, "ovms_models_cache_dir": str(self.cache_b / "models")},
        }
        data["all"]["children"]["ovms_sites"] = {
            "children": {
                site.replace("-", "_"): {"hosts": {h: None for h in hosts}, "vars": site_vars[site]}
                for site, hosts in SITES.items()
            }
        }
        self.inventory.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")

    def deploy(self, *extra: str) -> LauncherRun:
        return self.launcher.run(["deploy", "-i", str(self.inventory), "--json", *extra])

    def diff(self, *extra: str) -> LauncherRun:
        return self.launcher.run(["diff", "-i", str(self.inventory), *extra])

    def add_new_version(self) -> None:
        """Version 2 of the model in store-b's cache (once)."""
        if not (self.cache_b / "models" / MODEL / str(NEW_VERSION)).is_dir():
            modelcache.copy_version(self.cache_b, MODEL, 1, NEW_VERSION)

    def require_first(self) -> None:
        if self.first is None or self.first.returncode != 0:
            pytest.skip("the first roll-out failed (see test_batch_1_is_verified_before_batch_2_starts)")


def _lines(run: LauncherRun, kind: str) -> list[dict[str, Any]]:
    found = []
    for line in run.stdout.splitlines():
        if line.startswith("{"):
            record = json.loads(line)
            if record.get("type") == kind:
                found.append(record)
    return found


def _events(run_dir: Path) -> list[dict[str, Any]]:
    """A run's recorded runner events, in their order."""
    folder = run_dir / "artifacts" / "deploy" / "job_events"
    events = [json.loads(p.read_text(encoding="utf-8")) for p in folder.glob("*.json")]
    return sorted(events, key=lambda e: int(e.get("counter") or 0))


def _created(event: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(event["created"])


def _containers(host: Host) -> dict[str, tuple[str, str]]:
    """Our containers on a host: name -> (ID, start time)."""
    ids = host.ssh.run(["docker", "ps", "--all", "--quiet", "--filter", LABEL]).stdout.split()
    if not ids:
        return {}
    inspected = json.loads(host.ssh.run(["docker", "inspect", *ids]).stdout)
    return {c["Name"].lstrip("/"): (c["Id"], c["State"]["StartedAt"]) for c in inspected}


def _model_versions(host: Host) -> list[str]:
    """The version folders of the model on a server host (ovms_models_dir's default: the server's data
    folder's models/)."""
    folder = f"{common_default('ovms_server_data_dir')}/models/{MODEL}"
    listed = host.ssh.run(["find", folder, "-mindepth", "1", "-maxdepth", "1", "-type", "d"], check=False)
    return sorted(Path(line).name for line in listed.stdout.split())


def drift_document(run: LauncherRun) -> dict[str, Any]:
    documents = [json.loads(line) for line in run.stdout.splitlines() if line.startswith("{")]
    assert len(documents) == 1, f"one JSON document expected:\n{run.stdout}\n{run.stderr[-3000:]}"
    return documents[0]


@pytest.fixture(scope="module")
def fleet(
    multihost: Harness, multihost_archive_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Fleet]:
    workdir = tmp_path_factory.mktemp("fleet-rollout")
    runs = workdir / "runs"
    launcher = Launcher(workdir / "certs", runs)
    media = rm.prepare_inputs(launcher, workdir, (MODEL,))
    cache_b = modelcache.populate(workdir / "cache-b", cache_dir(), [MODEL])
    state = Fleet(multihost, workdir, workdir / "hosts.yml", media, cache_b, launcher, runs)
    try:
        # host3 serves store-b: the server's images beside the client's conftest loaded
        loaded = multihost.load_images(multihost_archive_dir, {SERVERS_GROUP: ["host3"]})
        # the harness's record of its loads is the session's layout (tests/multihost/test_harness.py)
        multihost.loaded = [r for r in multihost.loaded if r not in loaded]
        state.loaded_on_host3 = [r.tag for r in loaded if r.loaded]
        state.write_inventory()
        launcher.ok(["certs", "generate", "-i", str(state.inventory), "--dir", str(workdir / "certs")])
        yield state
    finally:
        state.write_inventory()  # the bad image is no deployment's
        launcher.run(["destroy", "-i", str(state.inventory), "--purge", "-y", "--json"])
        if state.loaded_on_host3:
            state.host("host3").ssh.run(["docker", "image", "rm", *state.loaded_on_host3], check=False)
        shutil.rmtree(cache_b, ignore_errors=True)


def test_batch_1_is_verified_before_batch_2_starts(fleet: Fleet) -> None:
    run = fleet.deploy(*SERIAL)
    fleet.first = run
    batches = [b for b in _lines(run, "batch") if b["state"] == "done"]
    assert run.returncode == 0, run.describe() + "\n" + rm.diagnostics(fleet.harness.hosts)
    assert [(b["number"], b["sites"], b["hosts"], b["status"]) for b in batches] == [
        (1, [STORE_A], SITES[STORE_A], "successful"),
        (2, [STORE_B], SITES[STORE_B], "successful"),
    ]
    first, second = (_events(Path(b["run_dir"])) for b in batches)
    verify = [e for e in first if (e.get("event_data") or {}).get("play") == "Verify"]
    verified = {e["event_data"].get("host") for e in verify if e["event"] == "runner_on_ok"}
    assert {"host1", "host2"} <= verified, "store-a's Verify play did not run on both its hosts"
    stats = next(e for e in first if e["event"] == "playbook_on_stats")["event_data"]
    assert not stats.get("failures") and not stats.get("dark"), stats
    assert {(e.get("event_data") or {}).get("host") for e in first} - {None} == {"host1", "host2"}
    assert {(e.get("event_data") or {}).get("host") for e in second} - {None} == {"host3"}
    # ordered by the events' own clocks: the whole of batch 1, Verify included, before batch 2's first
    assert max(_created(e) for e in first) < min(_created(e) for e in second)
    assert max(_created(e) for e in verify) < min(_created(e) for e in second)
    assert _lines(run, "rollout")[-1]["status"] == "completed"


@pytest.mark.parametrize("client", ["host2", "host3"])
def test_both_sites_serve(fleet: Fleet, client: str) -> None:
    fleet.require_first()
    host = fleet.host(client)
    persons = rm.wait_for_person(host, INSTANCE)
    assert persons, f"no person detection in {client}'s results\n" + rm.diagnostics([host])


def test_store_b_uses_its_own_server(fleet: Fleet) -> None:
    """The site rule: host3's client dials the server of its own site (on its host), not host1's."""
    fleet.require_first()
    info = rm.container(fleet.host("host3"), f"ovms-client-{INSTANCE}")
    assert info is not None
    assert "OVMS_TLS_CERT" not in rm.container_env(info)  # local, not host1's mTLS proxy


def test_diff_after_the_rollout_reports_nothing(fleet: Fleet) -> None:
    fleet.require_first()
    converged = fleet.diff()
    assert converged.returncode == 0, f"{converged.stdout}\n{converged.stderr[-4000:]}"
    for site, hosts in SITES.items():
        assert f"site {site}" in converged.stdout, converged.stdout
        for host in hosts:
            assert f"{host}: nothing would change" in converged.stdout, converged.stdout

    # the JSON form is checked on the drifted deployment below (each form is a check run of its own:
    # about a warm re-deploy each); both forms' rendering: tests/unit/test_drift.py


def test_a_new_model_version_of_store_b_names_exactly_its_host_and_the_model(fleet: Fleet) -> None:
    fleet.require_first()
    fleet.add_new_version()
    what = f"{MODEL} v{NEW_VERSION}"

    as_json = fleet.diff("--json")
    document = drift_document(as_json)
    assert as_json.returncode == 3, f"{as_json.stdout}\n{as_json.stderr[-4000:]}"
    assert document["changed"] is True
    assert list(document["sites"]) == [STORE_A, STORE_B], document
    changed = {
        host: body["changes"]
        for site in document["sites"].values()
        for host, body in site["hosts"].items()
        if body["changes"]
    }
    assert list(changed) == SITES[STORE_B], document
    assert {(c["category"], c["what"]) for c in changed["host3"]} == {("models", what)}, changed
    assert set(document["sites"][STORE_A]["hosts"]) == set(SITES[STORE_A]), document


def test_a_failing_canary_leaves_batch_2_untouched(fleet: Fleet) -> None:
    fleet.require_first()
    fleet.add_new_version()  # store-b's pending change (also when the diff test above failed early)
    host3 = fleet.host("host3")
    before = _containers(host3)
    assert any(name.startswith("ovms-client-") for name in before) and "ovms-server" in before, before
    versions_before = _model_versions(host3)
    assert "1" in versions_before and str(NEW_VERSION) not in versions_before, versions_before
    runs_before = set(fleet.runs.iterdir())
    # every client would be recreated (a new environment); store-a's server cannot get its image
    fleet.write_inventory(
        client_env={"OVMS_CANARY_ROUND": "2"}, host_vars={"host1": {"ovms_server_image": UNREACHABLE_IMAGE}}
    )
    run = fleet.deploy(*SERIAL)
    assert run.returncode != 0, run.describe()
    end = _lines(run, "rollout")[-1]
    assert end["status"] == "stopped" and end["batches_run"] == 1, end
    assert [(b["number"], b["sites"], b["hosts"]) for b in end["not_run"]] == [(2, [STORE_B], ["host3"])]
    done = [b for b in _lines(run, "batch") if b["state"] == "done"]
    assert [(b["number"], b["failed"], b["stop"]) for b in done] == [(1, [STORE_A], True)]
    new_runs = sorted(set(fleet.runs.iterdir()) - runs_before)
    assert new_runs == [Path(done[0]["run_dir"])]
    events = _events(new_runs[0])
    assert "host3" not in {(e.get("event_data") or {}).get("host") for e in events}
    failed = {e["event_data"]["host"] for e in events if e["event"] == "runner_on_failed"}
    assert "host1" in failed, run.describe()
    assert _containers(host3) == before
    assert _model_versions(host3) == versions_before, "store-b's new model version reached host3"
