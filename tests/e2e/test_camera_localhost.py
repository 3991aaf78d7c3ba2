"""A camera in the single-system setup, end to end on the real engine: `launcher deploy -i
inventories/localhost -i inventories/localhost-camera` runs the RTSP camera simulator (a real
GStreamer RTSP server) beside the server and the client, and the client reads the camera over the
private network. This module's camera asks for basic authentication, with a password holding `@`, `:`
and `/`, which the client gets from ovms_client_camera_credentials.

One deployment for the module, in file order: the client reads 15 FPS and finds the person → status
shows the camera and the stream → `docker pause` of the camera is a stall, `docker stop` a drop, and
frames resume after each → the password is nowhere it must not be → a USB camera profile gets exactly
its device and group, and a host without the device is refused before any container changes.
"""

from __future__ import annotations

import json
import os
import socket
import statistics
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from testbed.dockerutil import docker
from testbed.isolation import write_isolation
from testbed.launcher_cli import Launcher, LauncherRun
from testbed.paths import PROJECT_ROOT
from testbed.remote import parse_json_lines

pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.sources]

DOUBLE = "ovms-launcher/ovms-double:dev"
PROFILE = "person-detection"
INSTANCE = f"{PROFILE}-1"
# the profile's defaults (client/profile.py): a stall is noticed within stall_timeout_s, frames
# resume within reopen_backoff_max_s + 5 s; stats lines come every stats_interval_s
STALL_TIMEOUT_S = 5.0
REOPEN_BACKOFF_MAX_S = 10.0
STATS_INTERVAL_S = 5.0
CAMERA_FPS = 15.0
USERNAME = "store-op"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Site:
    tag: str
    root: Path
    password: str
    inventory: list[str]
    launcher: Launcher
    runs: list[LauncherRun] = field(default_factory=list)

    @property
    def camera(self) -> str:
        return f"{self.tag}-camera"

    @property
    def client(self) -> str:
        return f"{self.tag}-client-{INSTANCE}"

    def run(self, command: str, *args: str) -> LauncherRun:
        result = self.launcher.run([command, *self.inventory, *args])
        self.runs.append(result)
        return result

    def stats(self) -> list[dict[str, Any]]:
        path = self.root / "client" / "results" / INSTANCE / "stats.jsonl"
        return parse_json_lines(path.read_text()) if path.exists() else []

    def wait_stats(self, condition: Callable[[dict[str, Any]], bool], within_s: float, what: str) -> dict:
        """The first new stats line (written after this call) meeting `condition`, within `within_s`."""
        seen = len(self.stats())
        deadline = time.monotonic() + within_s
        while time.monotonic() < deadline:
            lines = self.stats()
            for line in lines[seen:]:
                if condition(line):
                    return line
            time.sleep(0.5)
        tail = json.dumps(self.stats()[-3:], indent=1)
        raise AssertionError(f"no stats line showed {what} within {within_s:.0f} s; last lines:\n{tail}")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    root = tmp_path_factory.mktemp("camera")
    tag = f"ovms-cam-{uuid.uuid4().hex[:6]}"
    password = f"p@ss:w/rd-{uuid.uuid4().hex[:8]}"
    camera_url = f"rtsp://{tag}-camera:8554/sample"
    override = write_isolation(
        root / "override",
        tag,
        root,
        ovms_camera_container_name=f"{tag}-camera",
        ovms_camera_data_dir=str(root / "camera"),
        ovms_camera_port=_free_port(),
        ovms_camera_credentials={"username": USERNAME, "password": password},
        ovms_client_camera_credentials={camera_url: {"username": USERNAME, "password": password}},
    )
    inventory = [
        "-i",
        str(PROJECT_ROOT / "inventories" / "localhost"),
        "-i",
        str(PROJECT_ROOT / "inventories" / "localhost-camera"),
        "-i",
        str(override),
    ]
    launcher = Launcher(root / "certs", root / "runs")
    state = Site(tag, root, password, inventory, launcher)
    try:
        yield state
    finally:
        state.launcher.run(["destroy", *inventory, "--yes", "--json"])
        names = docker("ps", "-aq", "--filter", f"name={tag}", check=False).stdout.split()
        if names:
            docker("rm", "-f", *names, check=False)
        docker("network", "rm", tag, check=False)


@pytest.fixture(scope="module")
def deployed(site: Site) -> Site:
    run = site.run("deploy", "-e", f"ovms_server_image={DOUBLE}", "--json")
    assert run.returncode == 0, run.describe()
    return site


def test_the_client_reads_the_camera_at_its_pace_and_finds_the_person(deployed: Site):
    # two full stats windows of reading (the first lines hold the model's start)
    line = deployed.wait_stats(lambda s: s["frames"] >= 200, 120, "200 frames")
    source = line["sources"][0]
    # the URL as the client dials it, the password masked (the user name says whose credentials)
    assert source["input"] == f"rtsp://{USERNAME}:***@{deployed.camera}:8554/sample", source
    assert source["state"] == "reading", source
    deployed.wait_stats(lambda s: True, 2 * STATS_INTERVAL_S + 2, "a further line")
    deployed.wait_stats(lambda s: True, 2 * STATS_INTERVAL_S + 2, "a further line")
    fps = statistics.median(s["fps"] for s in deployed.stats()[-3:])
    assert CAMERA_FPS * 0.9 <= fps <= CAMERA_FPS * 1.1, f"median fps {fps} over the last 3 windows"

    path = deployed.root / "client" / "results" / INSTANCE / "detections.jsonl"
    records = parse_json_lines(path.read_text())[-50:]
    persons = [d for r in records for d in r.get("detections", []) if d.get("label") == "person"]
    assert persons, f"no person in the last {len(records)} results"


def test_status_shows_the_camera_and_the_stream(deployed: Site):
    run = deployed.run("status", "--json")
    assert run.returncode == 0, run.describe()
    (host,) = run.summary["hosts"]
    assert "camera" in host["roles"], host["roles"]
    (camera,) = host["cameras"]
    assert camera["state"] == "running" and camera["urls"], camera
    assert all(deployed.password not in url and "@" not in url for url in camera["urls"]), camera
    (client,) = host["clients"]
    assert client["sources"][0]["state"] == "reading", client
    assert client["sources"][0]["last_frame_age_s"] < STALL_TIMEOUT_S, client


def test_a_paused_camera_is_a_stall_and_frames_resume(deployed: Site):
    before = deployed.stats()[-1]
    docker("pause", deployed.camera)
    try:
        stalled = deployed.wait_stats(
            lambda s: s["stalls"] > before["stalls"] or s["sources"][0]["state"] == "stalled",
            STALL_TIMEOUT_S + STATS_INTERVAL_S + 3,
            "a stall",
        )
        assert stalled["sources"][0]["last_frame_age_s"] >= STALL_TIMEOUT_S * 0.8, stalled
        time.sleep(2)
    finally:
        docker("unpause", deployed.camera)
    resumed = deployed.wait_stats(
        lambda s: s["sources"][0]["state"] == "reading" and s["frames"] > stalled["frames"],
        REOPEN_BACKOFF_MAX_S + 5 + STATS_INTERVAL_S,
        "frames again after the pause",
    )
    assert resumed["stalls"] > before["stalls"], resumed


def test_a_stopped_camera_is_a_drop_and_frames_resume(deployed: Site):
    before = deployed.stats()[-1]
    docker("stop", "-t", "2", deployed.camera)
    try:
        dropped = deployed.wait_stats(
            lambda s: s["drops"] > before["drops"], STATS_INTERVAL_S + 5, "a drop after docker stop"
        )
        assert dropped["sources"][0]["state"] != "reading", dropped
        assert dropped["stalls"] == before["stalls"], "a stopped camera is a drop, not a stall"
    finally:
        docker("start", deployed.camera)
    resumed = deployed.wait_stats(
        lambda s: s["sources"][0]["state"] == "reading" and s["frames"] > dropped["frames"],
        REOPEN_BACKOFF_MAX_S + 5 + STATS_INTERVAL_S,
        "frames again after the restart",
    )
    assert resumed["reconnects"] > before["reconnects"], resumed
    status = deployed.run("status", "--json")
    (client,) = status.summary["hosts"][0]["clients"]
    assert client["drops"] >= 1 and client["stalls"] >= 1 and client["reconnects"] >= 2, client


def test_the_camera_password_is_nowhere_it_must_not_be(deployed: Site):
    again = deployed.run("deploy", "-e", f"ovms_server_image={DOUBLE}", "--diff", "--json")
    assert again.returncode == 0, again.describe()
    status = deployed.launcher.run(["status", *deployed.inventory])
    secret = deployed.password
    places: dict[str, str] = {"`launcher status`": status.stdout + status.stderr}
    for number, run in enumerate(deployed.runs):
        places[f"`launcher {' '.join(run.args[:1])}` #{number} output"] = run.stdout + run.stderr
    for name in (deployed.client, deployed.camera):
        places[f"docker inspect {name}"] = docker("inspect", name).stdout
        logs = docker("logs", name)
        places[f"docker logs {name}"] = logs.stdout + logs.stderr
    for folder in (deployed.root / "runs", deployed.root / "client" / "results"):
        for path in folder.rglob("*"):
            if path.is_file():
                places[str(path.relative_to(deployed.root))] = path.read_text(errors="replace")
    leaks = sorted(where for where, text in places.items() if secret in text)
    assert not leaks, f"the camera password appears in: {', '.join(leaks)}"
    assert any("runs" in where for where in places), "no runner artifact was searched"

    # the password reaches the client as a file of root and the client's group, 0640
    creds = deployed.root / "client" / "secrets" / "cameras.json"
    stat = creds.stat()
    assert (stat.st_uid, oct(stat.st_mode & 0o777)) == (0, "0o640"), (stat.st_uid, oct(stat.st_mode))
    assert json.loads(creds.read_text())["cameras"][0]["password"] == secret
    env = json.loads(docker("inspect", deployed.client).stdout)[0]["Config"]["Env"]
    assert "OVMS_CAMERA_CREDENTIALS=/secrets/cameras.json" in env, env


def _usb_profile(site: Site, name: str, device: str) -> list[str]:
    """Extra vars deploying one profile `name` (the shipped person detector) reading `device`."""
    folder = site.root / "profiles" / name
    folder.mkdir(parents=True, exist_ok=True)
    data = yaml.safe_load((PROJECT_ROOT / "profiles" / PROFILE / "profile.yaml").read_text())
    data.update(name=name, inputs=[device])
    (folder / "profile.yaml").write_text(yaml.safe_dump(data))
    extra = {
        "ovms_client_profiles": [{"name": name, "path": str(folder)}],
        "ovms_client_env": {"CLIENT_LOG_LEVEL": "INFO"},
        "ovms_client_results_timeout": 0,
    }
    return ["-e", json.dumps(extra), "-e", f"ovms_server_image={DOUBLE}", "--json", "--tags", "client"]


@pytest.fixture
def video_device() -> Iterator[tuple[str, int]]:
    """A character device /dev/videoN made for the test (no driver answers it: the client retries)."""
    for number in range(90, 100):
        path = f"/dev/video{number}"
        if not Path(path).exists():
            break
    else:
        pytest.skip("no free /dev/videoN name")
    made = subprocess.run(
        ["mknod", "-m", "0660", path, "c", "81", str(number)], capture_output=True, text=True
    )
    if made.returncode != 0:
        pytest.skip(f"cannot make a device node here: {made.stderr.strip()}")
    try:
        os.chown(path, 0, 44)  # group `video` on Debian
        yield path, 44
    finally:
        Path(path).unlink()


def test_a_usb_camera_gets_its_device_and_a_missing_one_is_refused(deployed: Site, video_device):
    path, gid = video_device
    run = deployed.run("deploy", *_usb_profile(deployed, "usb-cam", path))
    assert run.returncode == 0, run.describe()
    name = f"{deployed.tag}-client-usb-cam-1"
    info = json.loads(docker("inspect", name).stdout)[0]
    devices = [(d["PathOnHost"], d["PathInContainer"]) for d in info["HostConfig"]["Devices"] or []]
    assert devices == [(path, path)], info["HostConfig"]["Devices"]
    assert info["HostConfig"]["GroupAdd"] == [str(gid)], info["HostConfig"]["GroupAdd"]
    started = info["State"]["StartedAt"]
    # a dry run reads the deployed profile too: the container's device is no change
    dry = deployed.run("deploy", *_usb_profile(deployed, "usb-cam", path), "--check")
    assert dry.returncode == 0 and dry.changed() == {"localhost": 0}, dry.describe()

    missing = "/dev/video89" if path != "/dev/video89" else "/dev/video88"
    assert not Path(missing).exists()
    refused = deployed.run("deploy", *_usb_profile(deployed, "usb-cam", missing))
    assert refused.returncode == 1, refused.describe()
    text = refused.describe()
    assert "host localhost" in text and "profile usb-cam" in text and missing in text, text
    after = json.loads(docker("inspect", name).stdout)[0]
    assert (
        after["State"]["StartedAt"] == started
        and after["HostConfig"]["Devices"] == info["HostConfig"]["Devices"]
    )
