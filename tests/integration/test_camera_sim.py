"""The camera simulator image (ovms-launcher/camera-sim:dev) run as the ovms_camera role runs it:
read-only root filesystem, a tmpfs /tmp, no capabilities, no-new-privileges, user 5003, published on
127.0.0.1. Read with OpenCV's FFmpeg backend, as the client reads cameras.

Two containers for the module: the image with no arguments (the built-in sample, no authentication)
and one configured with a clip from a mounted media folder and basic authentication.
"""

from __future__ import annotations

import itertools
import json
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import cv2
import numpy as np
import pytest

from testbed.dockerutil import (
    TEST_LABEL,
    docker,
    engine_available,
    image_exists,
    logs,
    readable_tmpdir,
    remove_container,
    unique_name,
)

pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.sources, pytest.mark.timeout(180)]

IMAGE = "ovms-launcher/camera-sim:dev"
USERNAME = "viewer"
PASSWORD = "s3cr@t:pa/ss"  # '@', ':' and '/': percent-encoded in the URL
CLIP_SIZE = (320, 240)  # not the sample's 640x480: a frame of this size comes from the clip
HARDENING = (
    "--read-only",
    "--tmpfs",
    "/tmp:size=64m",
    "--cap-drop",
    "ALL",
    "--security-opt",
    "no-new-privileges",
    "--user",
    "5003:5003",
)


@dataclass
class Camera:
    name: str
    port: int

    def url(self, path: str, username: str | None = None, password: str | None = None) -> str:
        auth = f"{quote(username, safe='')}:{quote(password or '', safe='')}@" if username else ""
        return f"rtsp://{auth}127.0.0.1:{self.port}/{path}"


def rtsp_status(port: int, method: str, path: str = "", timeout: float = 5) -> str:
    """The status line the server at 127.0.0.1:port answers to a bare request (no credentials)."""
    request = f"{method} rtsp://127.0.0.1:{port}/{path} RTSP/1.0\r\nCSeq: 1\r\n"
    if method == "DESCRIBE":
        request += "Accept: application/sdp\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as conn:
        conn.sendall(f"{request}\r\n".encode())
        return conn.recv(4096).decode("latin-1").split("\r\n", 1)[0]


def start(name: str, *args: str, volumes: tuple[str, ...] = ()) -> Camera:
    """Run the image detached with the role's hardening, wait until it answers RTSP."""
    mounts = [arg for volume in volumes for arg in ("--volume", volume)]
    docker(
        "run",
        "--detach",
        "--name",
        name,
        "--label",
        TEST_LABEL,
        *HARDENING,
        *mounts,
        "--publish",
        "127.0.0.1::8554",
        IMAGE,
        *args,
    )
    port = int(docker("port", name, "8554/tcp").stdout.splitlines()[0].rsplit(":", 1)[1])
    deadline = time.monotonic() + 60
    while True:
        try:
            if rtsp_status(port, "OPTIONS").startswith("RTSP/1.0 "):
                return Camera(name, port)
        except OSError:
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"{name} does not answer RTSP on 127.0.0.1:{port}:\n{logs(name)}")
        time.sleep(0.2)


def open_capture(url: str) -> cv2.VideoCapture:
    params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, 10000, cv2.CAP_PROP_READ_TIMEOUT_MSEC, 5000]
    return cv2.VideoCapture(url, cv2.CAP_FFMPEG, params)


def read_frames(url: str, count: int) -> list[np.ndarray]:
    cap = open_capture(url)
    try:
        assert cap.isOpened(), f"cannot open {url}"
        frames = []
        for _ in range(count):
            ok, frame = cap.read()
            assert ok, f"read {len(frames)} frames of {count} from {url}"
            frames.append(frame)
        return frames
    finally:
        cap.release()


def wait_for_log(name: str, text: str, timeout: float = 10) -> str:
    deadline = time.monotonic() + timeout
    while text not in (out := logs(name)):
        if time.monotonic() > deadline:
            pytest.fail(f"{name} never logged {text!r}:\n{out}")
        time.sleep(0.2)
    return out


@pytest.fixture(scope="module")
def work() -> Iterator[Path]:
    """A folder the container's user can read (pytest's tmp folders are private to root)."""
    with readable_tmpdir("ovms-camera-sim-") as path:
        yield path


@pytest.fixture(scope="module")
def image() -> str:
    if not engine_available():
        pytest.skip("needs the Docker engine")
    if not image_exists(IMAGE):
        pytest.fail(f"{IMAGE} is missing: build it with `launcher images build camera-sim`")
    return IMAGE


@pytest.fixture(scope="module")
def default_camera(image: str) -> Iterator[Camera]:
    name = unique_name("ovms-test-camera")
    try:
        yield start(name)
    finally:
        remove_container(name)


def _clip(path: Path) -> None:
    """2 s of 320x240 MPEG-4 (not H.264: the simulator encodes it once at start), 15 FPS."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 15, CLIP_SIZE)
    assert writer.isOpened()
    for index in range(30):
        frame = np.full((CLIP_SIZE[1], CLIP_SIZE[0], 3), 40, np.uint8)
        cv2.circle(frame, (20 + index * 9, 120), 25, (0, 200, 255), -1)
        writer.write(frame)
    writer.release()
    path.chmod(0o644)


@pytest.fixture(scope="module")
def auth_camera(image: str, work: Path) -> Iterator[Camera]:
    media = work / "media"
    media.mkdir(mode=0o755)
    _clip(media / "clip.mp4")
    config = work / "config.json"
    config.write_text(
        json.dumps(
            {
                "port": 8554,
                "streams": [{"name": "aisle3", "file": "/media/clip.mp4", "fps": 15}],
                "auth": {"username": USERNAME, "password": PASSWORD},
            }
        )
    )
    config.chmod(0o644)
    name = unique_name("ovms-test-camera")
    volumes = (f"{media}:/media:ro", f"{config}:/etc/camera-sim/config.json:ro")
    try:
        yield start(name, "--config", "/etc/camera-sim/config.json", volumes=volumes)
    finally:
        remove_container(name)


def test_default_sample_is_served_looped_at_15_fps(default_camera: Camera):
    url = default_camera.url("sample")
    cap = open_capture(url)
    try:
        assert cap.isOpened(), f"cannot open {url}"
        opened = time.monotonic()
        stamps, shapes = [], set()
        # 2 s for FFmpeg's probing (it hands over the frames it buffered at once), then 7 s: the
        # 6 s sample loops at least once inside the window
        while time.monotonic() - opened < 9:
            ok, frame = cap.read()
            assert ok, "the stream ended or stalled"
            shapes.add(frame.shape)
            if time.monotonic() - opened >= 2:
                stamps.append(time.monotonic())
    finally:
        cap.release()
    assert shapes == {(480, 640, 3)}
    fps = (len(stamps) - 1) / (stamps[-1] - stamps[0])
    assert 10 <= fps <= 20, f"{fps:.1f} FPS"
    assert max(b - a for a, b in itertools.pairwise(stamps)) < 1.0, "a gap of a second or more"
    out = wait_for_log(default_camera.name, "disconnected from /sample")
    assert "serving rtsp://0.0.0.0:8554/sample" in out
    assert "connected: playing /sample" in out


def test_a_client_reconnects_at_once(default_camera: Camera):
    url = default_camera.url("sample")
    for _ in range(2):
        frames = read_frames(url, 5)
        assert frames[-1].shape == (480, 640, 3)


def test_healthcheck(default_camera: Camera, auth_camera: Camera, image: str):
    for camera in (default_camera, auth_camera):  # 401 to a DESCRIBE is still a live server
        assert docker("exec", camera.name, "camera-sim", "--healthcheck", check=False).returncode == 0
    # nothing listens in a container of its own
    alone = docker("run", "--rm", "--label", TEST_LABEL, *HARDENING, image, "--healthcheck", check=False)
    assert alone.returncode == 1, alone.stderr
    assert "no RTSP server on 127.0.0.1:8554" in alone.stderr


def test_configured_clip_needs_basic_authentication(auth_camera: Camera):
    assert rtsp_status(auth_camera.port, "DESCRIBE", "aisle3") == "RTSP/1.0 401 Unauthorized"
    for url in (auth_camera.url("aisle3"), auth_camera.url("aisle3", USERNAME, "wrong")):
        cap = open_capture(url)
        try:
            assert not cap.isOpened() or not cap.read()[0], f"{url} was served"
        finally:
            cap.release()
    frames = read_frames(auth_camera.url("aisle3", USERNAME, PASSWORD), 20)
    assert {f.shape for f in frames} == {(CLIP_SIZE[1], CLIP_SIZE[0], 3)}
    out = wait_for_log(auth_camera.name, "disconnected from /aisle3")
    assert "encoding once to H.264" in out
    assert "basic authentication required" in out
    for secret in (PASSWORD, quote(PASSWORD, safe=""), "pa/ss"):
        assert secret not in out


def test_invalid_config_exits_2_naming_file_and_key(image: str, work: Path):
    config = work / "bad.json"
    config.write_text(json.dumps({"streams": [{"name": "aisle 3", "file": None, "fps": 15}]}))
    config.chmod(0o644)
    proc = docker(
        "run",
        "--rm",
        "--label",
        TEST_LABEL,
        *HARDENING,
        "--volume",
        f"{config}:/etc/camera-sim/bad.json:ro",
        image,
        "--config",
        "/etc/camera-sim/bad.json",
        check=False,
    )
    assert proc.returncode == 2, proc.stderr
    assert "/etc/camera-sim/bad.json" in proc.stderr
    assert "streams[0].name" in proc.stderr
