"""Frame sources: looping files, image folders, clear errors, reopening a dropped live stream."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from client.backoff import Backoff
from client.errors import SourceError
from client.profile import LoadedProfile, Profile
from client.sources import EndOfStream, ImageFolderSource, LiveSource, VideoFileSource, _redact, make_source


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
    assert _redact("rtsp://admin:s3cret@cam.local:554/live") == "rtsp://admin:***@cam.local:554/live"
    assert _redact("rtsp://cam.local/live") == "rtsp://cam.local/live"
