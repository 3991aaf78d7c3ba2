"""Frame sources: looping files, image folders, clear errors, reopening a dropped live stream; camera
URLs masked, credentials inserted, the RTSP transport set per open, stalls told from drops (with a
scripted capture and a fake clock: no assertion depends on real timing)."""

from __future__ import annotations

import base64
import json
import os
import socket
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from client import probe as probe_module
from client import sources as sources_module
from client.backoff import Backoff
from client.credentials import load_camera_credentials
from client.errors import SourceError
from client.probe import diagnose
from client.profile import LoadedProfile, Profile
from client.sources import (
    CaptureOptions,
    EndOfStream,
    ImageFolderSource,
    LiveSource,
    SourceStatus,
    VideoFileSource,
    describe_input,
    make_source,
)
from client.urls import endpoint, redact, redact_text, redact_url, with_credentials

pytestmark = pytest.mark.sources


def write_video(path: Path, frames: int) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (32, 24))
    for i in range(frames):
        writer.write(np.full((24, 32, 3), i * 20, np.uint8))
    writer.release()
    return path


def read_all(source, limit: int = 1000) -> list[np.ndarray]:
    frames = []
    try:
        while len(frames) < limit:
            frame = source.read(timeout=1)
            if frame is not None:
                frames.append(frame)
    except EndOfStream:
        pass
    return frames


def test_video_file_plays_once_or_loops(tmp_path):
    video = write_video(tmp_path / "clip.avi", 5)
    once = VideoFileSource(video, loop=False, key="inputs[0].path", profile_file=tmp_path / "profile.yaml")
    once.open()
    frames = read_all(once)
    assert len(frames) == 5 and frames[0].shape == (24, 32, 3)
    looping = VideoFileSource(video, loop=True, key="inputs[0].path", profile_file=tmp_path / "profile.yaml")
    looping.open()
    frames = read_all(looping, limit=12)
    assert len(frames) == 12
    # the sixth frame is the first one again
    assert abs(int(frames[5].mean()) - int(frames[0].mean())) < 5
    looping.close()


def test_missing_and_undecodable_video_are_clear_errors(tmp_path):
    missing = VideoFileSource(tmp_path / "nope.mp4", True, "inputs[0].path", tmp_path / "profile.yaml")
    with pytest.raises(
        SourceError, match=r"profile.yaml: inputs\[0\].path: video file .*nope.mp4 does not exist"
    ):
        missing.open()
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video at all" * 100)
    with pytest.raises(SourceError, match="cannot be decoded"):
        VideoFileSource(junk, True, "inputs[0].path", tmp_path / "profile.yaml").open()


def test_image_folder_in_name_order_skipping_unreadable_files(tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    for i in (2, 0, 1):
        cv2.imwrite(str(folder / f"frame_{i}.png"), np.full((8, 8, 3), i * 50, np.uint8))
    (folder / "frame_3.jpg").write_bytes(b"broken")
    (folder / "notes.txt").write_text("not an image")
    source = ImageFolderSource(
        folder, "frame_*", loop=False, key="inputs[0].path", profile_file=tmp_path / "p"
    )
    source.open()
    assert [int(f[0, 0, 0]) for f in read_all(source)] == [0, 50, 100]
    looping = ImageFolderSource(folder, "*", loop=True, key="inputs[0].path", profile_file=tmp_path / "p")
    looping.open()
    assert [int(f[0, 0, 0]) for f in read_all(looping, limit=5)] == [0, 50, 100, 0, 50]


def test_empty_or_missing_folder_is_an_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(SourceError, match="holds no images matching"):
        ImageFolderSource(tmp_path / "empty", "*", True, "inputs[0].path", tmp_path / "p").open()
    with pytest.raises(SourceError, match="does not exist"):
        ImageFolderSource(tmp_path / "none", "*", True, "inputs[0].path", tmp_path / "p").open()


def test_live_source_reopens_a_dropped_stream(tmp_path):
    # A finite file read as a live stream: at its end the stream "drops" and must be reopened.
    video = write_video(tmp_path / "clip.avi", 3)
    source = LiveSource("test stream", str(video), cv2.CAP_FFMPEG, Backoff(0.01, 0.05, jitter=0))
    source.open()
    try:
        frames = []
        for _ in range(2000):
            frame = source.read(timeout=5)
            assert frame is not None, "the live source stopped delivering frames"
            frames.append(frame)
            if source.reconnects >= 2:
                break
        assert source.reconnects >= 2
    finally:
        source.close()


def test_make_source_checks_device_nodes(tmp_path):
    profile = Profile.model_validate(
        {
            "model": {"name": "m", "input": "x", "size": {"width": 8, "height": 8}, "dtype": "uint8"},
            "postprocess": {"type": "raw"},
            "inputs": ["/dev/video99", "clip.mp4"],
        }
    )
    loaded = LoadedProfile(profile, tmp_path, tmp_path / "profile.yaml")
    with pytest.raises(SourceError, match=r"inputs\[0\].path: video device /dev/video99 does not exist"):
        make_source(profile.inputs[0], 0, loaded)
    video = make_source(profile.inputs[1], 1, loaded)
    assert (
        isinstance(video, VideoFileSource) and video.path == tmp_path / "clip.mp4"
    )  # relative to the profile


def test_rtsp_credentials_are_masked_in_logs():
    assert redact_url("rtsp://admin:s3cret@cam.local:554/live") == "rtsp://admin:***@cam.local:554/live"
    assert redact_url("rtsp://cam.local/live") == "rtsp://cam.local/live"


# --- URLs: masking, credentials ------------------------------------------------------------------

SECRET = "p@ss:w/rd"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        # percent-encoded, as the client inserts credentials
        ("rtsp://op:p%40ss%3Aw%2Frd@cam:8554/aisle3", "rtsp://op:***@cam:8554/aisle3"),
        # typed raw: `@` and `:` in the password
        ("rtsp://op:p@ss:w@cam:8554/aisle3", "rtsp://op:***@cam:8554/aisle3"),
        # a raw `/` cuts the URL in the wrong place: everything up to the last `@` is hidden
        (f"rtsp://op:{SECRET}@cam:8554/aisle3", "rtsp://***@cam:8554/aisle3"),
        ("rtsp://op:pa#ss@cam/x", "rtsp://***@cam/x"),
        ("http://token@cam/video.mjpg", "http://***@cam/video.mjpg"),
        ("rtsp://op:pw@[fd00::5]:554/x", "rtsp://op:***@[fd00::5]:554/x"),
        ("rtsp://op:pw@cam:99999999/x", "rtsp://***@cam:99999999/x"),
        ("rtsp://cam.local/live?channel=1", "rtsp://cam.local/live?channel=1"),
        ("/media/sample.mp4", "/media/sample.mp4"),
    ],
)
def test_redaction_parses_the_url(url, expected):
    assert redact_url(url) == expected


def test_credentials_are_percent_encoded_into_the_url():
    url = with_credentials("rtsp://cam:8554/aisle3?x=1", "o p", SECRET)
    assert url == "rtsp://o%20p:p%40ss%3Aw%2Frd@cam:8554/aisle3?x=1"
    assert redact_url(url) == "rtsp://o%20p:***@cam:8554/aisle3?x=1"
    target = endpoint(url)
    assert target is not None and (target.username, target.password) == ("o p", SECRET)
    assert (target.address, target.request_url) == ("cam:8554", "rtsp://cam:8554/aisle3?x=1")


# --- FFmpeg options per open -----------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self.now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.now += seconds


FRAME = np.zeros((4, 4, 3), np.uint8)


class Camera:
    """A scripted camera for LiveSource: each open takes the next session of the script.

    A session is None (the open fails at once), "timeout" (the open fails after open_timeout_s),
    "hold" (the open waits for `release`, then fails) or a list of reads: ("frame", seconds) delivers a frame,
    ("fail", seconds) fails the read; the seconds are added to the fake clock, as the read took
    them. A session whose list is used up without a failure delivers frames forever; past the
    script, opens succeed and deliver frames forever (the camera is healthy). `done` is set once
    the last session was taken."""

    def __init__(self, clock: FakeClock, sessions: list) -> None:
        self.clock = clock
        self.sessions = list(sessions)
        self.opens: list[dict] = []  # what each open saw
        self.done = threading.Event()
        self.holding = threading.Event()
        self.release = threading.Event()

    def __call__(self, target, api, params=None) -> FakeCapture:
        self.opens.append(
            {"target": target, "params": params, "options": os.environ.get(CaptureOptions.VARIABLE)}
        )
        session = self.sessions.pop(0) if self.sessions else []
        if not self.sessions:
            self.done.set()
        if session == "timeout":  # nothing answers: the open fails after open_timeout_s
            self.clock.advance(10.0)
            session = None
        elif session == "hold":  # the open waits until the test has looked, then fails
            self.holding.set()
            assert self.release.wait(10)
            self.holding.clear()
            session = None
        return FakeCapture(self, session)


class FakeCapture:
    def __init__(self, camera: Camera, reads) -> None:
        self.camera = camera
        self.reads = None if reads is None else list(reads)

    def isOpened(self) -> bool:
        return self.reads is not None

    def set(self, prop, value) -> bool:
        return True

    def read(self):
        if not self.reads:
            time.sleep(0.002)
            return True, FRAME
        kind, seconds = self.reads.pop(0)
        self.camera.clock.advance(seconds)
        return (True, FRAME) if kind == "frame" else (False, None)

    def release(self) -> None:
        pass


def live(camera: Camera, clock: FakeClock, **kwargs) -> LiveSource:
    return LiveSource(
        "rtsp rtsp://cam/x",
        "rtsp://cam/x",
        cv2.CAP_FFMPEG,
        Backoff(0.001, 0.002, jitter=0),
        stall_timeout_s=5.0,
        open_timeout_s=10.0,
        capture_factory=camera,
        clock=clock,
        **kwargs,
    )


def wait_until(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.005)


def test_each_open_sets_its_own_transport_and_restores_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(CaptureOptions.VARIABLE, "probesize;32")
    clock = FakeClock()
    # each camera drops once after two frames, is reopened, then keeps delivering
    camera = Camera(clock, [])
    sessions = {
        "tcp": [[("frame", 0.1)] * 2 + [("fail", 0.01)]],
        "udp": [[("frame", 0.1)] * 2 + [("fail", 0.01)]],
    }

    def factory(target, api, params=None):
        transport = "udp" if "udp" in target else "tcp"
        camera.sessions = sessions[transport]
        return camera(target, api, params)

    monkeypatch.setattr(sources_module.cv2, "VideoCapture", factory)
    profile = Profile.model_validate(
        {
            "model": {"name": "m", "input": "x", "size": {"width": 8, "height": 8}, "dtype": "uint8"},
            "postprocess": {"type": "raw"},
            "inputs": [
                {"type": "rtsp", "url": "rtsp://cam-tcp/x", "stall_timeout_s": 2, "open_timeout_s": 3},
                {"type": "rtsp", "url": "rtsp://cam-udp/x", "transport": "udp"},
            ],
            "resilience": {"backoff_initial_s": 0.001, "reopen_backoff_max_s": 0.002},
        }
    )
    loaded = LoadedProfile(profile, tmp_path, tmp_path / "profile.yaml")
    built = [make_source(source, i, loaded) for i, source in enumerate(profile.inputs)]
    assert [s.description for s in built] == ["rtsp rtsp://cam-tcp/x", "rtsp rtsp://cam-udp/x (udp)"]
    for source in built:
        source.open()
    try:
        wait_until(lambda: all(s.status().reconnects == 1 for s in built))
    finally:
        for source in built:
            source.close()
    seen = {(o["target"], o["options"]) for o in camera.opens}
    assert seen == {("rtsp://cam-tcp/x", "rtsp_transport;tcp"), ("rtsp://cam-udp/x", "rtsp_transport;udp")}
    assert sum(o["target"] == "rtsp://cam-tcp/x" for o in camera.opens) >= 2  # reopened
    assert sum(o["target"] == "rtsp://cam-udp/x" for o in camera.opens) >= 2
    tcp_params = next(o["params"] for o in camera.opens if o["target"] == "rtsp://cam-tcp/x")
    assert tcp_params == [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, 3000, cv2.CAP_PROP_READ_TIMEOUT_MSEC, 2000]
    assert os.environ[CaptureOptions.VARIABLE] == "probesize;32"  # restored


class GatedFactory:
    """A fake cv2.VideoCapture whose opens wait until the test lets them finish: records the order
    of the opens and what the environment held during each."""

    def __init__(self, environ: dict[str, str]) -> None:
        self.environ = environ
        self.lock = threading.Lock()
        self.started: list[str] = []
        self.seen: dict[str, str | None] = {}
        self.inside: dict[str, threading.Event] = {}
        self.finish: dict[str, threading.Event] = {}

    def gate(self, name: str) -> None:
        self.inside[name] = threading.Event()
        self.finish[name] = threading.Event()

    def __call__(self, target, api, params=None):
        with self.lock:
            self.started.append(target)
            self.seen[target] = self.environ.get(CaptureOptions.VARIABLE)
        self.inside[target].set()
        assert self.finish[target].wait(10)
        return FakeCapture(Camera(FakeClock(), []), None)


def open_in_thread(factory: GatedFactory, name: str, value: str | None) -> threading.Thread:
    factory.gate(name)
    thread = threading.Thread(
        target=sources_module._open_capture, args=(factory, name, cv2.CAP_FFMPEG, (), value), daemon=True
    )
    thread.start()
    return thread


TCP, UDP = "rtsp_transport;tcp", "rtsp_transport;udp"


def test_opens_of_one_transport_run_together_and_another_one_waits_its_turn(monkeypatch):
    environ: dict[str, str] = {}
    options = CaptureOptions(environ)
    monkeypatch.setattr(sources_module, "CAPTURE_OPTIONS", options)
    factory = GatedFactory(environ)
    threads = [open_in_thread(factory, "tcp-1", TCP)]
    assert factory.inside["tcp-1"].wait(10)
    # the same transport (or none needed: a file) opens beside a slow one
    threads.append(open_in_thread(factory, "tcp-2", TCP))
    threads.append(open_in_thread(factory, "file-1", None))
    assert factory.inside["tcp-2"].wait(10) and factory.inside["file-1"].wait(10)
    # an open that needs the other transport waits for them
    threads.append(open_in_thread(factory, "udp-1", UDP))
    wait_until(lambda: options.waiting == 1)
    # fairness: from now on opens of the current transport, and files, queue behind it
    threads.append(open_in_thread(factory, "tcp-3", TCP))
    wait_until(lambda: options.waiting == 2)
    threads.append(open_in_thread(factory, "file-2", None))
    wait_until(lambda: options.waiting == 3)
    for name in ("tcp-1", "tcp-2", "file-1"):
        factory.finish[name].set()
    assert factory.inside["udp-1"].wait(10)
    # tcp-3 waits until udp-1 is done, and file-2 behind tcp-3: joining udp-1 would only prolong it
    assert options.waiting == 2
    assert not factory.inside["tcp-3"].is_set() and not factory.inside["file-2"].is_set()
    factory.finish["udp-1"].set()
    assert factory.inside["tcp-3"].wait(10) and factory.inside["file-2"].wait(10)
    factory.finish["tcp-3"].set()
    factory.finish["file-2"].set()
    for thread in threads:
        thread.join(10)
    assert factory.started[:4] == ["tcp-1", "tcp-2", "file-1", "udp-1"]
    assert factory.seen == {
        "tcp-1": TCP,
        "tcp-2": TCP,
        "file-1": TCP,
        "udp-1": UDP,
        "tcp-3": TCP,
        "file-2": TCP,
    }
    assert CaptureOptions.VARIABLE not in environ and options.waiting == 0  # restored: it was not set


def test_library_debug_logs_that_print_urls_are_lowered_before_the_first_open():
    environ = {"OPENCV_FFMPEG_DEBUG": "1", "OPENCV_FFMPEG_LOGLEVEL": "48"}
    logging_ = cv2.utils.logging
    level = logging_.getLogLevel()
    logging_.setLogLevel(logging_.LOG_LEVEL_DEBUG)
    try:
        with CaptureOptions(environ).applied(None):
            pass
        assert environ == {"OPENCV_FFMPEG_LOGLEVEL": "24"}  # AV_LOG_WARNING
        assert logging_.getLogLevel() == logging_.LOG_LEVEL_WARNING
    finally:
        logging_.setLogLevel(level)
    quiet = {"OPENCV_FFMPEG_LOGLEVEL": "16"}
    with CaptureOptions(quiet).applied(None):
        pass
    assert quiet == {"OPENCV_FFMPEG_LOGLEVEL": "16"}


# --- stalls and drops ---------------------------------------------------------------------------


def test_a_read_that_fails_at_once_is_a_drop_and_frames_coming_back_a_reconnect():
    clock = FakeClock()
    camera = Camera(
        clock,
        [
            [("frame", 0.07)] * 3 + [("fail", 0.2)],  # the camera is stopped: the read fails at once
            "hold",  # the camera is down: opens fail
            None,
            [("fail", 0.01)],  # opened, but the stream ends before a frame: not counted again
            [("frame", 0.07)] * 2,  # back
        ],
    )
    source = live(camera, clock)
    source.open()
    try:
        assert camera.holding.wait(10)
        down = source.status()
        camera.release.set()
        wait_until(camera.done.is_set)
        wait_until(lambda: source.status().reconnects == 1)
        status = source.status()
    finally:
        camera.release.set()
        source.close()
    assert (down.state, down.drops, down.stalls, down.reconnects) == ("reconnecting", 1, 0, 0)
    assert down.error == "dropped: the stream ended or the connection closed (read failed after 0.2 s)"
    assert (status.drops, status.stalls, status.reconnects) == (1, 0, 1)
    assert status.state == "reading" and status.error is None
    assert source.status().state == "ended"


def test_a_read_that_fails_after_the_read_timeout_is_a_stall():
    clock = FakeClock()
    camera = Camera(
        clock,
        [
            [("frame", 0.07)] * 2 + [("fail", 5.0)],  # paused: FFmpeg's read timeout (stall_timeout_s)
            "timeout",  # reopening: the paused camera accepts the connection but says nothing
            "hold",
            [("fail", 5.0)],  # reopened, still silent: the same stall
            [("frame", 0.07), ("frame", 5.0)],  # back; a frame only after the timeout: a stall again
            [("frame", 0.07)],
        ],
    )
    source = live(camera, clock)
    source.open()
    try:
        assert camera.holding.wait(10)
        silent = source.status()
        camera.release.set()
        wait_until(camera.done.is_set)
        wait_until(lambda: source.status().reconnects == 2)
        status = source.status()
    finally:
        camera.release.set()
        source.close()
    assert (silent.state, silent.stalls, silent.drops) == ("stalled", 1, 0)
    assert silent.error == "no answer within open_timeout_s (10 s)"
    assert (status.drops, status.stalls, status.reconnects) == (0, 2, 2)


def test_a_stalled_camera_that_then_refuses_connections_is_reconnecting():
    clock = FakeClock()
    camera = Camera(clock, [[("frame", 0.07), ("fail", 5.0)], None, "hold"])
    source = live(camera, clock, probe=lambda: "connection refused by cam:554 (nothing listens there)")
    source.open()
    try:
        assert camera.holding.wait(10)
        status = source.status()
    finally:
        camera.release.set()
        source.close()
    assert (status.state, status.stalls, status.drops) == ("reconnecting", 1, 0)
    assert status.error == "connection refused by cam:554 (nothing listens there)"


class BlockingCapture:
    """One frame, then a read that blocks until released (a camera paused mid-stream)."""

    def __init__(self) -> None:
        self.reads = 0
        self.release_read = threading.Event()
        self.blocked = threading.Event()

    def __call__(self, target, api, params=None) -> BlockingCapture:
        return self

    def isOpened(self) -> bool:
        return True

    def set(self, prop, value) -> bool:
        return True

    def read(self):
        self.reads += 1
        if self.reads == 1:
            return True, FRAME
        if self.reads == 2:
            self.blocked.set()
            self.release_read.wait(10)
            return True, FRAME
        time.sleep(0.01)
        return True, FRAME

    def release(self) -> None:
        pass


def test_state_is_stalled_while_the_last_frame_is_too_old_even_before_the_read_returns():
    clock = FakeClock()
    capture = BlockingCapture()
    source = live(capture, clock)  # type: ignore[arg-type]
    source.open()
    try:
        assert capture.blocked.wait(10)
        assert source.status().state == "reading"
        clock.advance(5.5)
        status = source.status()
        assert status.state == "stalled" and status.last_frame_age_s == pytest.approx(5.5)
        assert status.error == "no frame for more than 5 s"
        assert status.stalls == 0  # counted when the read gives up, not before
        capture.release_read.set()
        wait_until(lambda: source.status().state == "reading")
    finally:
        capture.release_read.set()
        source.close()


def test_a_camera_that_never_answers_keeps_retrying_and_says_why(caplog):
    clock = FakeClock()
    camera = Camera(clock, [None] * 30)
    source = live(camera, clock, probe=lambda: "connection refused by cam:554 (nothing listens there)")
    with caplog.at_level("WARNING", logger="client.source"):
        source.open()
        try:
            wait_until(camera.done.is_set)
            status = source.status()
        finally:
            source.close()
    assert status.state in ("reconnecting", "connecting", "reading")
    assert (status.drops, status.stalls, status.reconnects) == (0, 0, 0)
    messages = [r.getMessage() for r in caplog.records]
    refused = [m for m in messages if "connection refused by cam:554" in m]
    # logged when the reason first appears and every REPEAT_EVERY attempts, not at each attempt
    assert refused[0].startswith("rtsp rtsp://cam/x: connection refused") and 2 <= len(refused) <= 4


def test_credentials_reach_opencv_only(monkeypatch, tmp_path, caplog):
    camera = Camera(FakeClock(), [])
    monkeypatch.setattr(sources_module.cv2, "VideoCapture", camera)
    creds = tmp_path / "cameras.json"
    creds.write_text(json.dumps({"cameras": [{"match": "cam", "username": "op", "password": SECRET}]}))
    profile = Profile.model_validate(
        {
            "model": {"name": "m", "input": "x", "size": {"width": 8, "height": 8}, "dtype": "uint8"},
            "postprocess": {"type": "raw"},
            "inputs": ["http://cam:8080/video.mjpg"],
        }
    )
    loaded = LoadedProfile(profile, tmp_path, tmp_path / "profile.yaml")
    with caplog.at_level("DEBUG"):
        source = make_source(profile.inputs[0], 0, loaded, load_camera_credentials(creds))
        source.open()
        try:
            wait_until(lambda: source.read(0.1) is not None)
            status = source.status()
        finally:
            source.close()
    assert camera.opens[0]["target"] == "http://op:p%40ss%3Aw%2Frd@cam:8080/video.mjpg"
    assert camera.opens[0]["options"] is None  # no RTSP transport for HTTP
    assert source.description == "http http://op:***@cam:8080/video.mjpg"
    assert status.input == "http://op:***@cam:8080/video.mjpg"
    assert all("p@ss" not in r.getMessage() and "p%40ss" not in r.getMessage() for r in caplog.records)


def test_describe_inputs_masks_credentials(tmp_path):
    profile = Profile.model_validate(
        {
            "model": {"name": "m", "input": "x", "size": {"width": 8, "height": 8}, "dtype": "uint8"},
            "postprocess": {"type": "raw"},
            "inputs": [
                "clip.mp4",
                {"type": "images", "path": "/frames", "pattern": "*.jpg"},
                {"type": "rtsp", "url": "rtsp://op:p%40ss@cam/x", "transport": "udp"},
                "https://cam/s.m3u8",
                "/dev/video0",
            ],
        }
    )
    loaded = LoadedProfile(profile, tmp_path, tmp_path / "profile.yaml")
    assert [describe_input(i, loaded) for i in profile.inputs] == [
        f"video {tmp_path / 'clip.mp4'}",
        "images /frames/*.jpg",
        "rtsp rtsp://op:***@cam/x (udp)",
        "http https://cam/s.m3u8",
        "device /dev/video0",
    ]


def test_file_sources_report_reading_then_ended(tmp_path):
    video = write_video(tmp_path / "clip.avi", 2)
    source = VideoFileSource(video, loop=False, key="inputs[0].path", profile_file=tmp_path / "p")
    source.open()
    assert source.status().state == "reading" and source.status().last_frame_age_s is None
    read_all(source)
    status = source.status()
    assert status.state == "ended" and status.last_frame_age_s is not None
    assert (status.input, status.reconnects, status.stalls, status.drops) == (str(video), 0, 0, 0)


# --- diagnosis of a camera that cannot be opened ----------------------------------------------------


class TinyServer:
    """A loopback server answering each request with `answer(request_text)`."""

    def __init__(self, answer, encoding: str = "utf-8") -> None:
        self.answer = answer
        self.encoding = encoding
        self.requests: list[str] = []
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(4096)
                    if not chunk:
                        break
                    data += chunk
                text = data.decode("latin-1")
                self.requests.append(text)
                conn.sendall(self.answer(text).encode(self.encoding))

    def close(self) -> None:
        self.sock.close()


def rtsp_camera(request: str) -> str:
    token = base64.b64encode(f"op:{SECRET}".encode()).decode()
    if "/missing" in request.split("\r\n")[0]:
        return "RTSP/1.0 404 Not Found\r\nCSeq: 1\r\n\r\n"
    if f"Authorization: Basic {token}" in request:
        return "RTSP/1.0 200 OK\r\nCSeq: 1\r\nContent-Length: 0\r\n\r\n"
    return 'RTSP/1.0 401 Unauthorized\r\nCSeq: 1\r\nWWW-Authenticate: Basic realm="cam"\r\n\r\n'


def test_diagnosis_tells_wrong_credentials_from_missing_ones_without_the_password():
    server = TinyServer(rtsp_camera)
    base = f"127.0.0.1:{server.port}"
    try:
        good = diagnose(f"rtsp://op:p%40ss%3Aw%2Frd@{base}/sample", 2)
        wrong = diagnose(f"rtsp://op:Wr%40ng%3A%2F@{base}/sample", 2)
        none = diagnose(f"rtsp://{base}/sample", 2)
        missing = diagnose(f"rtsp://op:p%40ss%3Aw%2Frd@{base}/missing", 2)
        udp = diagnose(f"rtsp://op:p%40ss%3Aw%2Frd@{base}/sample", 2, "udp")
    finally:
        server.close()
    assert good == f"{base} answers (200 OK) but the stream cannot be opened or decoded"
    assert udp.endswith("; with udp the RTP ports must be reachable from the camera")
    assert wrong == f"{base} refused the credentials of user 'op' (401 Unauthorized)"
    assert none.startswith(f"{base} asks for credentials (401 Unauthorized)")
    assert missing == f"{base} has no stream at /missing (404 Not Found)"
    # the request line carries the URL without credentials; the answers never show them
    assert all(r.startswith(f"DESCRIBE rtsp://{base}/") for r in server.requests)
    assert not any("p@ss" in text or "Wr@ng" in text for text in (good, wrong, none, missing))


def test_diagnosis_of_http_cameras_and_unreachable_ones():
    def http_camera(request: str) -> str:
        if "Authorization: Basic" in request:
            return "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=x\r\nContent-Length: 0\r\n\r\n"
        return "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=x\r\nContent-Length: 0\r\n\r\n"

    server = TinyServer(http_camera)
    try:
        wrong = diagnose(f"http://op:x@127.0.0.1:{server.port}/video.mjpg", 2)
    finally:
        server.close()
    assert wrong == f"127.0.0.1:{server.port} refused the credentials of user 'op' (401 Unauthorized)"
    assert server.requests[0].startswith("GET /video.mjpg HTTP/1.1\r\n")
    closed = socket.create_server(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    assert diagnose(f"rtsp://127.0.0.1:{port}/x", 2) == (
        f"connection refused by 127.0.0.1:{port} (nothing listens there)"
    )


# --- what the probe sends: never more than FFmpeg would -------------------------------------------


def digest_camera(header: str, password: str = SECRET, path: str = "/sample"):
    """A camera that asks with `header` (its WWW-Authenticate value) and checks a Digest answer the way
    a camera does (MD5, qop auth or none)."""
    import hashlib
    import re

    def md5(text: str) -> str:
        return hashlib.md5(text.encode()).hexdigest()

    def answer(request: str) -> str:
        line = next((x for x in request.split("\r\n") if x.startswith("Authorization: ")), None)
        if line is not None and line.startswith("Authorization: Digest "):
            fields = dict(re.findall(r'(\w+)="?([^",]*)"?', line[len("Authorization: Digest ") :]))
            ha1 = md5(f"op:{fields['realm']}:{password}")
            ha2 = md5(f"DESCRIBE:{fields['uri']}")
            if "qop" in fields:
                expected = md5(f"{ha1}:{fields['nonce']}:{fields['nc']}:{fields['cnonce']}:auth:{ha2}")
            else:
                expected = md5(f"{ha1}:{fields['nonce']}:{ha2}")
            if fields.get("response") == expected and fields["uri"].endswith(path):
                return "RTSP/1.0 200 OK\r\nCSeq: 1\r\nContent-Length: 0\r\n\r\n"
        return f"RTSP/1.0 401 Unauthorized\r\nCSeq: 1\r\nWWW-Authenticate: {header}\r\n\r\n"

    return answer


def authorizations(server: TinyServer) -> list[str | None]:
    """The Authorization scheme of each request the server got (None: no credentials sent)."""
    found = []
    for request in server.requests:
        line = next((x for x in request.split("\r\n") if x.startswith("Authorization: ")), None)
        found.append(None if line is None else line.split()[1])
    return found


GOOD_URL = "rtsp://op:p%40ss%3Aw%2Frd@127.0.0.1:{port}/sample"


@pytest.mark.parametrize(
    "headers",
    [
        # both offered, Basic first: Digest all the same (Basic would send the password readable)
        ['Basic realm="cam"', 'Digest realm="cam", nonce="abc123"'],
        # several challenges in one header
        ['Basic realm="cam", Digest realm="cam", nonce="abc123", qop="auth,auth-int"'],
        ['Digest realm="cam", nonce="abc123", algorithm=MD5, qop="auth"'],
    ],
)
def test_the_probe_answers_digest_whenever_it_is_offered(headers):
    def camera(request: str) -> str:
        text = digest_camera(headers[-1])(request)
        if text.startswith("RTSP/1.0 401"):
            lines = "".join(f"WWW-Authenticate: {h}\r\n" for h in headers)
            return f"RTSP/1.0 401 Unauthorized\r\nCSeq: 1\r\n{lines}\r\n"
        return text

    server = TinyServer(camera)
    try:
        result = diagnose(GOOD_URL.format(port=server.port), 2)
    finally:
        server.close()
    assert result == f"127.0.0.1:{server.port} answers (200 OK) but the stream cannot be opened or decoded"
    assert authorizations(server) == [None, "Digest"]


@pytest.mark.parametrize(
    ("header", "shown"),
    [
        ('Bearer realm="cam"', "scheme Bearer"),
        ("NTLM", "scheme NTLM"),
        # Basic beside a scheme the client does not answer: not the only scheme offered
        ('Basic realm="cam", Bearer realm="cam"', "scheme Basic, Bearer"),
        # a Digest FFmpeg cannot answer is not answered, not even with the Basic next to it
        (
            'Digest realm="cam", nonce="n", algorithm=SHA-256, Basic realm="cam"',
            "scheme Digest algorithm=SHA-256, Basic",
        ),
        ('Digest realm="cam", nonce="n", qop="auth-int"', "scheme Digest"),
        (None, "no scheme named"),
    ],
)
def test_the_probe_sends_no_credentials_for_a_scheme_it_does_not_answer(header, shown):
    def camera(request: str) -> str:
        asks = f"WWW-Authenticate: {header}\r\n" if header else ""
        return f"RTSP/1.0 401 Unauthorized\r\nCSeq: 1\r\n{asks}\r\n"

    server = TinyServer(camera)
    try:
        result = diagnose(GOOD_URL.format(port=server.port), 2)
    finally:
        server.close()
    assert result.startswith(f"127.0.0.1:{server.port} asks for credentials ({shown}; 401 Unauthorized)")
    assert authorizations(server) == [None]  # one request, without credentials


def test_the_probe_sends_basic_only_when_it_is_the_only_scheme():
    server = TinyServer(rtsp_camera)  # Basic only
    try:
        result = diagnose(GOOD_URL.format(port=server.port), 2)
    finally:
        server.close()
    assert result.startswith(f"127.0.0.1:{server.port} answers (200 OK)")
    assert authorizations(server) == [None, "Basic"]


def test_camera_text_reaches_the_operator_without_control_characters():
    # the camera's bytes (read as latin-1): ESC sequences, BEL, DEL and the C1 CSI (0x9b)
    reason = "Unauth\x1b[2J\x1b]0;pwned\x07orized \x9b31m\x7f" + "x" * 100

    def camera(request: str) -> str:
        return f"RTSP/1.0 401 {reason}\r\nCSeq: 1\r\nWWW-Authenticate: Basic realm=x\r\n\r\n"

    server = TinyServer(camera, encoding="latin-1")
    try:
        with_user = diagnose(f"rtsp://op:x@127.0.0.1:{server.port}/a", 2)
        without = diagnose(f"rtsp://127.0.0.1:{server.port}/a", 2)
    finally:
        server.close()
    for text in (with_user, without):
        assert text.isprintable(), repr(text)
        assert "(401 Unauth[2J]0;pwnedorized 31mxxx" in text
    assert "x" * 40 in with_user and "x" * 80 not in with_user  # the reason is cut at 80 characters


def test_a_probe_that_fails_unexpectedly_says_so_without_raising(monkeypatch):
    # a host name that cannot be encoded for DNS: socket raises UnicodeError, not OSError
    assert diagnose("rtsp://op:s3cret@cam..store.local/x", 1) == (
        "cannot reach cam..store.local:554: the host name is not valid (UnicodeError)"
    )

    def boom(*args, **kwargs):
        raise RuntimeError("rtsp://op:s3cret@cam/x went wrong")

    monkeypatch.setattr(probe_module, "_ask", boom)
    assert diagnose("rtsp://op:s3cret@cam/x", 1) == "cannot reach cam:554: RuntimeError"


def test_secret_url_parameters_are_masked_in_probe_messages():
    server = TinyServer(lambda r: "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
    try:
        result = diagnose(f"http://127.0.0.1:{server.port}/video.cgi?user=op&pwd=s3cret&ch=1", 2)
    finally:
        server.close()
    assert (
        result == f"127.0.0.1:{server.port} has no stream at /video.cgi?user=***&pwd=***&ch=1 (404 Not Found)"
    )
    assert "pwd=s3cret" in server.requests[0]  # the camera itself gets them, as FFmpeg sends them


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://cam/video.cgi?user=op&pwd=s3cret&ch=1", "http://cam/video.cgi?user=***&pwd=***&ch=1"),
        ("https://cam/live.m3u8?TOKEN=abc.def&x=1", "https://cam/live.m3u8?TOKEN=***&x=1"),
        ("http://cam/a?Password=x;Sig=y#f", "http://cam/a?Password=***;Sig=***#f"),
        ("http://cam/a?monkey=1&keys=2&stream_key=3", "http://cam/a?monkey=1&keys=2&stream_key=***"),
        ("rtsp://op:pw@cam/a?passwd=x&auth=y", "rtsp://op:***@cam/a?passwd=***&auth=***"),
        # some cameras take them in the path
        ("rtsp://cam/user=admin_password=s3cret_channel=1.sdp?real", "rtsp://cam/user=***?real"),
        ("http://cam/a?signature=x&apikey=y&key=z", "http://cam/a?signature=***&apikey=***&key=***"),
    ],
)
def test_secret_query_values_are_masked(url, expected):
    assert redact_url(url) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # a URL cut inside its user info (by a comma in the password): all after the user hidden
        ("rtsp://admin:Pa", "rtsp://admin:***"),
        ("RTSP://admin:Pa/rt", "RTSP://admin:***"),
        ("rtsp://cam:554/x", "rtsp://cam:554/x"),
        ("rtsp://[fd00::5]/x", "rtsp://[fd00::5]/x"),
        # any scheme, any case
        ("Rtsp://user:pw@cam/a", "rtsp://user:***@cam/a"),
        ("rstp://user:pw@cam/a", "rstp://user:***@cam/a"),
        # user info without a scheme
        ("admin:pw@cam/a", "***@cam/a"),
        ("/media/admin:p/w@cam/a", "/media/***@cam/a"),
        ("/media/clip@2x.mp4", "/media/clip@2x.mp4"),
        ("/media/12:30.mp4", "/media/12:30.mp4"),
    ],
)
def test_anything_that_looks_like_credentials_is_masked(text, expected):
    assert redact(text) == expected


def test_messages_are_masked_word_by_word():
    message = "cannot open 'rtsp://op:s3cret@cam/x' nor admin:pw@cam/a, see rtsp://cam:554/y?token=t0k"
    assert redact_text(message) == (
        "cannot open 'rtsp://op:***@cam/x' nor ***@cam/a, see rtsp://cam:554/y?token=***"
    )


# --- a reader that survives the unexpected --------------------------------------------------------


class ExplodingCapture:
    """Frames, then reads that raise (cv2.error quoting the URL with its password), then frames."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.opens = 0
        self.reads = 0
        self.released = 0
        self.source: LiveSource | None = None
        self.seen: list[SourceStatus] = []  # the source's status at each reopen

    def __call__(self, target, api, params=None) -> ExplodingCapture:
        self.opens += 1
        if self.opens > 1 and self.source is not None:
            self.seen.append(self.source.status())
        return self

    def isOpened(self) -> bool:
        return True

    def set(self, prop, value) -> bool:
        return True

    def read(self):
        self.reads += 1
        if 3 <= self.reads < 3 + self.failures:
            raise cv2.error(
                "OpenCV(4.10.0) cap_ffmpeg_impl.hpp:1601: error: (-2:Unspecified error) "
                "could not read rtsp://op:p%40ss%3Aw%2Frd@cam/x (p@ss:w/rd)\n in function 'grab'\n"
            )
        time.sleep(0.002)
        return True, FRAME

    def release(self) -> None:
        self.released += 1


def test_an_exception_in_the_reader_is_reported_and_the_camera_reopened(caplog):
    clock = FakeClock()
    capture = ExplodingCapture(failures=3)
    source = LiveSource(
        "rtsp rtsp://op:***@cam/x",
        "rtsp://op:p%40ss%3Aw%2Frd@cam/x",
        cv2.CAP_FFMPEG,
        Backoff(0.001, 0.002, jitter=0),
        capture_factory=capture,
        clock=clock,
    )
    capture.source = source
    with caplog.at_level("DEBUG", logger="client.source"):
        source.open()
        try:
            wait_until(lambda: source.status().reconnects == 1)
            status = source.status()
            alive = source._thread is not None and source._thread.is_alive()
        finally:
            source.close()
    assert alive and status.state == "reading" and status.error is None
    assert (status.drops, status.stalls, status.reconnects) == (1, 0, 1)
    assert capture.opens == 4 and capture.released >= 3  # each failed read released its capture
    assert [s.state for s in capture.seen] == ["reconnecting"] * 3
    assert capture.seen[0].error == (
        "unexpected cv2.error: OpenCV(4.10.0) cap_ffmpeg_impl.hpp:1601: error: (-2:Unspecified error) "
        "could not read rtsp://op:***@cam/x (***)"
    )
    messages = [r.getMessage() for r in caplog.records]
    unexpected = [m for m in messages if "unexpected cv2.error" in m]
    assert len(unexpected) == 1, messages  # logged once, not at every failure
    assert unexpected[0].startswith("rtsp rtsp://op:***@cam/x: unexpected cv2.error: OpenCV(4.10.0)")
    assert "rtsp://op:***@cam/x (***)" in unexpected[0] and "test_client_sources.py:" in unexpected[0]
    assert all("p@ss" not in m and "p%40ss" not in m for m in messages)


def test_a_probe_that_raises_does_not_stop_the_reader():
    clock = FakeClock()
    camera = Camera(clock, [None, None, "hold"])

    def probe() -> str:
        raise UnicodeError("label empty or too long")

    source = live(camera, clock, probe=probe)
    source.open()
    try:
        assert camera.holding.wait(10)
        status = source.status()
        camera.release.set()
        wait_until(lambda: source.read(0.1) is not None)
    finally:
        camera.release.set()
        source.close()
    assert status.state == "reconnecting"
    assert status.error == "unexpected UnicodeError: label empty or too long"


# --- states: connecting before the first frame ---------------------------------------------------


def test_a_live_source_is_connecting_until_its_first_frame_or_a_failure():
    clock = FakeClock()
    entered = [threading.Event(), threading.Event()]
    go = [threading.Event(), threading.Event()]
    opens: list[int] = []

    def factory(target, api, params=None) -> FakeCapture:
        index = len(opens)
        opens.append(index)
        if index < 2:  # the first two opens wait for the test, then fail
            entered[index].set()
            assert go[index].wait(10)
            return FakeCapture(Camera(clock, []), None)
        return FakeCapture(Camera(clock, []), [])  # frames from then on

    source = live(factory, clock)  # type: ignore[arg-type]
    source.open()
    try:
        assert entered[0].wait(10)
        opening = source.status()  # the first open is under way
        go[0].set()
        assert entered[1].wait(10)
        failed = source.status()  # the first open failed, the second is under way
        go[1].set()
        wait_until(lambda: source.read(0.1) is not None)
        reading = source.status()
    finally:
        for event in go:
            event.set()
        source.close()
    assert (opening.state, opening.error, opening.last_frame_age_s) == ("connecting", None, None)
    assert (failed.state, failed.error) == ("reconnecting", "cannot be opened")
    assert (reading.state, reading.error) == ("reading", None)


def test_a_camera_that_opens_is_connecting_until_its_first_frame_then_stalled():
    clock = FakeClock()
    capture = BlockingCapture()
    capture.reads = 1  # the first read blocks: the camera opened, no frame yet
    source = live(capture, clock)  # type: ignore[arg-type]
    source.open()
    try:
        assert capture.blocked.wait(10)
        connected = source.status()
        clock.advance(5.5)
        silent = source.status()
    finally:
        capture.release_read.set()
        source.close()
    assert (connected.state, connected.error) == ("connecting", None)
    assert (silent.state, silent.error) == ("stalled", "no frame for more than 5 s")


def test_every_state_is_documented():
    docs = (Path(__file__).resolve().parents[2] / "docs" / "profiles.md").read_text()
    states = [sources_module.CONNECTING, *(getattr(sources_module, n) for n in ("READING", "STALLED"))]
    states += [sources_module.RECONNECTING, sources_module.ENDED]
    row = next(line for line in docs.splitlines() if line.startswith("| `sources` |"))
    assert all(f"`{state}`" in row for state in states), row


def test_a_device_that_cannot_be_opened_says_why(tmp_path, monkeypatch):
    assert sources_module.device_problem(str(tmp_path / "video7")).endswith(
        "video7 does not exist (unplugged?); reopened when it is back"
    )
    node = tmp_path / "video8"
    node.write_bytes(b"")
    monkeypatch.setattr(sources_module.os, "access", lambda path, mode: False)
    assert sources_module.device_problem(str(node)) == (
        f"no read and write permission on {node} (the client's user needs the device's group)"
    )
    monkeypatch.setattr(sources_module.os, "access", lambda path, mode: True)
    assert sources_module.device_problem(str(node)).endswith(
        "(in use by another program, or not a capture device)"
    )
