"""A profile's output files on a real engine: verify and status follow the names the deployed profile
gives them. One deployment of the ovms_client role alone (single mode, names of its own) with two
profiles against the OVMS double:

- `renamed` (pushed from the controller) writes its detections to people.jsonl and its stats to
  pace.jsonl: verify waits for people.jsonl, status reads pace.jsonl;
- `quiet` (a remote copy fetched on the host from a loopback HTTP server) turns detections off:
  verify waits for its stats, the only file it writes.

On the role's old verify.yml (always detections.jsonl) the deployment fails; on its old status.yml the
renamed client's stats are missing from the summary.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from double_harness import IMAGE as DOUBLE_IMAGE
from double_harness import DoubleFactory, copy_model, local_mode

from launcher.content import content
from launcher.media import ensure_sample_media, write_manifest
from launcher.models import prepare_models
from launcher.runner.strategy import strategy_envvars
from testbed.dockerutil import TEST_LABEL, docker, engine_available, image_exists, readable_tmpdir
from testbed.http import serve_folder

pytestmark = [pytest.mark.docker, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
ROLES = ROOT / "roles"
CLIENT_IMAGE = "ovms-launcher/client:dev"
PERSON = yaml.safe_load((ROOT / "profiles" / "person-detection" / "profile.yaml").read_text())
# a slow pace and a stats line every second: little CPU, and verify's wait for stats is short
PACE = {"target_fps": 5}
RENAMED = {
    "detections_file": "people.jsonl",
    "stats_file": "pace.jsonl",
    "stats_interval_s": 1,
    "snapshot_interval_s": 0,
}
QUIET = {"detections": False, "stats_interval_s": 1, "snapshot_interval_s": 0}
PLAYBOOK = """
- name: Client
  hosts: all
  gather_facts: false
  roles:
    - role: ovms.edge.ovms_client
  tasks:
    - name: Verify as a deploy does
      ansible.builtin.include_role:
        name: ovms.edge.ovms_client
        tasks_from: verify.yml

    - name: Let the renamed client write its first stats line (the test's own wait)
      ansible.builtin.wait_for:
        path: "{{ ovms_client_data_dir }}/results/renamed-1/pace.jsonl"
        search_regex: '"frames"'
        timeout: 60

    - name: Read the status as `launcher status` does
      ansible.builtin.include_role:
        name: ovms.edge.ovms_client
        tasks_from: status.yml

    - name: Keep the status for the test
      ansible.builtin.copy:
        content: "{{ ovms_client_status_summary | to_nice_json }}"
        dest: "{{ ovms_client_test_status }}"
        mode: "0644"
"""


@dataclass
class Deployment:
    run: subprocess.CompletedProcess
    results: Path
    status: dict

    def output(self) -> str:
        return (self.run.stdout + self.run.stderr)[-6000:]


def _profile(folder: Path, outputs: dict) -> Path:
    """The project's person-detection profile with these outputs and a slower pace."""
    folder.mkdir(parents=True)
    data = {**PERSON, **PACE, "name": folder.name, "outputs": {**PERSON.get("outputs", {}), **outputs}}
    for key in ("detections", "detections_file", "stats_file"):
        if key not in outputs:
            data["outputs"].pop(key, None)
    (folder / "profile.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    (folder / "profile.env").write_text("CLIENT_LOG_LEVEL=INFO\n")
    return folder


def _archive(folder: Path, path: Path) -> str:
    with tarfile.open(path, "w:gz") as tar:
        for item in sorted(folder.iterdir()):
            data = item.read_bytes()
            info = tarfile.TarInfo(item.name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def work() -> Iterator[Path]:
    """A folder the containers' users can traverse (pytest's tmp folders are private to root)."""
    with readable_tmpdir("ovms-co-") as path:
        yield path


@pytest.fixture(scope="module")
def served(work: Path) -> Iterator[tuple[Path, str]]:
    """A folder served over HTTP on 127.0.0.1 (stopped at teardown) and its base URL."""
    root = work / "www"
    root.mkdir()
    with serve_folder(root) as base:
        yield root, base


@pytest.fixture(scope="module")
def deployment(work: Path, served: tuple[Path, str]) -> Iterator[Deployment]:
    if local_mode() or not engine_available():
        pytest.skip("needs the Docker engine")
    for image in (CLIENT_IMAGE, DOUBLE_IMAGE):
        if not image_exists(image):
            pytest.skip(f"needs {image} (launcher images build)")
    ident = uuid.uuid4().hex[:8]
    prefix = network = f"ovms-co-{ident}"
    doubles = DoubleFactory()
    try:
        # the role's network, made first with the labels the role gives it (so the role keeps it) and ours
        docker("network", "create", "--label", "ovms-launcher.managed=true", "--label", TEST_LABEL, network)
        model = prepare_models(names=["person-detection"])[0]
        repo = doubles.new_repository()
        copy_model(model.path, repo, model.name, model.version)
        config = {
            "model_config_list": [{"config": {"name": model.name, "base_path": f"/models/{model.name}"}}]
        }
        (repo / "config.json").write_text(json.dumps(config))
        (repo / "config.json").chmod(0o644)
        server = doubles(repo)
        docker("network", "connect", network, server.container)

        media = work / "media"
        media.mkdir()
        shutil.copy(ensure_sample_media().video, media / "sample.mp4")
        (media / "sample.mp4").chmod(0o644)
        write_manifest(media)  # the role ships only the files media.json lists
        renamed = _profile(work / "src" / "renamed", RENAMED)
        www, base = served
        sha = _archive(_profile(work / "src" / "quiet", QUIET), www / "quiet.tar.gz")

        data = work / "client"
        variables = {
            "ansible_connection": "local",
            "ansible_python_interpreter": sys.executable,
            "ovms_client_data_dir": str(data),
            "ovms_client_network": network,
            "ovms_client_container_prefix": prefix,
            "ovms_client_server_address": f"{server.container}:9000",
            "ovms_client_media_dir": str(media),
            "ovms_client_restart_policy": "no",
            "ovms_client_results_timeout": 90,
            "ovms_client_profiles": [
                {"name": "renamed", "path": str(renamed)},
                {"name": "quiet", "source": {"type": "url", "url": f"{base}/quiet.tar.gz", "sha256": sha}},
            ],
            "ovms_client_test_status": str(work / "status.json"),
        }
        (work / "hosts.yml").write_text(yaml.safe_dump({"all": {"hosts": {"co-host": variables}}}))
        (work / "client.yml").write_text(PLAYBOOK)
        collections = str(content().collections_path)
        # the launcher's strategy, as a deploy runs the role
        env = {
            **os.environ,
            "ANSIBLE_COLLECTIONS_PATH": collections,
            "ANSIBLE_NOCOLOR": "1",
            **strategy_envvars(),
        }
        run = subprocess.run(
            [str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(work / "hosts.yml"),
             str(work / "client.yml")],
            capture_output=True, text=True, env=env, timeout=900, check=False, cwd=work,
        )  # fmt: skip
        status_file = work / "status.json"
        status = json.loads(status_file.read_text()) if status_file.exists() else {}
        yield Deployment(run, data / "results", status)
    finally:
        found = docker("ps", "-aq", "--filter", f"name={prefix}-", check=False).stdout.split()
        if found:
            docker("rm", "-f", *found, check=False)
        doubles.close()
        docker("network", "rm", network, check=False)


def test_a_renamed_and_a_detectionless_profile_deploy_and_verify(deployment):
    assert deployment.run.returncode == 0, deployment.output()
    # verify waited for each profile's own first results
    assert "(item=renamed-1/people.jsonl)" in deployment.run.stdout, deployment.output()
    assert "(item=quiet-1/stats.jsonl)" in deployment.run.stdout, deployment.output()


def test_each_client_writes_under_its_profile_s_names(deployment):
    renamed, quiet = deployment.results / "renamed-1", deployment.results / "quiet-1"
    assert sorted(p.name for p in renamed.iterdir()) == ["pace.jsonl", "people.jsonl"]
    records = [json.loads(line) for line in (renamed / "people.jsonl").read_text().splitlines()]
    assert any(r["status"] == "ok" and r["detections"] for r in records)
    assert sorted(p.name for p in quiet.iterdir()) == ["stats.jsonl"]
    stats = [json.loads(line) for line in (quiet / "stats.jsonl").read_text().splitlines()]
    assert stats and stats[-1]["profile"] == "quiet" and max(line["frames"] for line in stats) > 0


def test_status_reads_each_profile_s_stats_file(deployment):
    assert deployment.run.returncode == 0, deployment.output()
    clients = {c["name"]: c for c in deployment.status["clients"]}
    assert set(clients) == {"renamed-1", "quiet-1"}
    # the renamed client's stats come from pace.jsonl (stats.jsonl does not exist)
    assert clients["renamed-1"]["frames"] is not None and clients["renamed-1"]["ts"] is not None, clients
    assert clients["quiet-1"]["frames"] is not None, clients
