"""`launcher media sample`: the astronaut photo, a video OpenCV reads back, JPEG frames; idempotent."""

from __future__ import annotations

import io
import os
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner
from rich.console import Console

from launcher import media
from launcher.cli import main
from launcher.models.fetch import cached_path, sha256_file
from launcher.paths import cache_dir


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh cache; the verified photo is copied from the user's cache when it is already there
    (it is only downloaded from PyPI when no earlier run fetched it)."""
    known = cached_path(media.PHOTO_SHA256, "astronaut.png")
    path = tmp_path / "cache"
    monkeypatch.setenv("OVMS_LAUNCHER_CACHE", str(path))
    if known.is_file():
        seeded = cached_path(media.PHOTO_SHA256, "astronaut.png")
        seeded.parent.mkdir(parents=True)
        shutil.copyfile(known, seeded)
    return path


def quiet() -> tuple[Console, io.StringIO]:
    buffer = io.StringIO()
    return Console(file=buffer, width=200), buffer


def test_sample_media_video_frames_and_photo(cache: Path) -> None:
    previous = os.umask(0o077)
    try:
        made = media.ensure_sample_media(console=quiet()[0])
    finally:
        os.umask(previous)
    folder = cache / "media"
    assert made.changed
    assert (made.photo, made.video, made.frames_dir) == (
        folder / "astronaut.png",
        folder / "sample.mp4",
        folder / "frames",
    )
    assert sha256_file(made.photo) == media.PHOTO_SHA256

    capture = cv2.VideoCapture(str(made.video))
    assert capture.isOpened()
    assert capture.get(cv2.CAP_PROP_FPS) == pytest.approx(15.0)
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    capture.release()
    assert len(frames) == 90  # 6 s at 15 fps
    assert {frame.shape for frame in frames} == {(480, 640, 3)}
    # it moves: the middle of the video differs clearly from its first frame
    difference = np.abs(frames[45].astype(int) - frames[0].astype(int)).mean()
    assert difference > 10

    jpegs = made.frames
    assert [p.name for p in jpegs] == [f"frame_{n:04d}.jpg" for n in range(12)]
    for path in jpegs:
        image = cv2.imread(str(path))
        assert image is not None
        assert image.shape == (480, 640, 3)
    # readable by the clients' (non-root) users whatever the umask
    for path in [folder, made.frames_dir]:
        assert path.stat().st_mode & 0o777 == 0o755
    assert {p.stat().st_mode & 0o777 for p in [made.photo, made.video, *jpegs]} == {0o644}
    # no temporary files left beside the results
    assert sorted(p.name for p in folder.iterdir()) == [
        "astronaut.png",
        "frames",
        "media.json",
        "retail.mp4",
        "retail_frames",
        "sample.mp4",
    ]


def test_second_run_does_nothing_and_repairs_damage(cache: Path, tmp_path: Path) -> None:
    out = tmp_path / "elsewhere"
    first = media.ensure_sample_media(out, console=quiet()[0])
    assert first.video.parent == out.resolve()
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}

    console, text = quiet()
    second = media.ensure_sample_media(out, console=console)
    assert not second.changed
    assert text.getvalue().strip() == f"sample media: up to date in {out.resolve()}"
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()} == stamps

    (out / "frames" / "frame_0003.jpg").unlink()
    third = media.ensure_sample_media(out, console=quiet()[0])
    assert third.changed
    assert len(third.frames) == 12


def test_cli_media_sample(cache: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(main, ["media", "sample", "--out", str(tmp_path / "m")])
    assert result.exit_code == 0, result.output
    assert f"video:  {tmp_path / 'm' / 'sample.mp4'}" in result.stdout
    again = runner.invoke(main, ["media", "sample", "--out", str(tmp_path / "m")])
    assert again.exit_code == 0
    assert "up to date" in again.stderr
    assert cache_dir() == cache
