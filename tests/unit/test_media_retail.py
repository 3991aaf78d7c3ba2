"""`launcher media sample`'s retail scene: a price label with text and an EAN-13 barcode over the
photo, as a video and JPEG frames; zxing-cpp reads the barcode from every frame; the recipe decides
when the files are rendered again."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import zxingcpp
from click.testing import CliRunner
from rich.console import Console

from launcher import media
from launcher.cli import main
from launcher.models.fetch import cached_path

pytestmark = pytest.mark.models

WIDTH, HEIGHT = media.VIDEO_SIZE


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


def quiet() -> Console:
    return Console(file=io.StringIO(), width=200)


def video_frames(path: Path) -> list[np.ndarray]:
    capture = cv2.VideoCapture(str(path))
    assert capture.isOpened(), path
    assert capture.get(cv2.CAP_PROP_FPS) == pytest.approx(media.VIDEO_FPS)
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    capture.release()
    return frames


def moved(box: media.Box, index: int) -> tuple[float, float, float, float]:
    """Box (x, y, w, h) of frame 0 in video frame `index`, as (x0, y0, x1, y1)."""
    x, y, w, h = box
    corners = np.array([[x, y, 1.0], [x + w, y + h, 1.0]]) @ media.retail_transform(index).T
    (x0, y0), (x1, y1) = corners
    return x0, y0, x1, y1


def read_ean13(frame: np.ndarray) -> list[tuple[str, str, tuple[float, float, float, float]]]:
    """Every barcode zxing-cpp finds (all formats): text, format name, bounding box of its position."""
    found = []
    for result in zxingcpp.read_barcodes(frame):
        position = result.position
        xs = [
            p.x for p in (position.top_left, position.top_right, position.bottom_right, position.bottom_left)
        ]
        ys = [
            p.y for p in (position.top_left, position.top_right, position.bottom_right, position.bottom_left)
        ]
        found.append((result.text, result.format.name, (min(xs), min(ys), max(xs), max(ys))))
    return found


@pytest.fixture
def made(cache: Path) -> media.SampleMedia:
    return media.ensure_sample_media(console=quiet())


def test_retail_video_and_frames_exist_with_their_sizes(made: media.SampleMedia, cache: Path) -> None:
    folder = cache / "media"
    assert made.retail_video == folder / "retail.mp4"
    assert made.retail_frames_dir == folder / "retail_frames"
    frames = video_frames(made.retail_video)
    assert len(frames) == media.VIDEO_FRAMES == 90
    assert {frame.shape for frame in frames} == {(HEIGHT, WIDTH, 3)} == {(480, 640, 3)}
    # it moves: the middle of the video differs from its first frame
    assert np.abs(frames[45].astype(int) - frames[0].astype(int)).mean() > 5
    jpegs = made.retail_frames
    assert [p.name for p in jpegs] == [f"frame_{n:04d}.jpg" for n in range(12)]
    for path in jpegs:
        image = cv2.imread(str(path))
        assert image is not None and image.shape == (HEIGHT, WIDTH, 3)
    assert {p.stat().st_mode & 0o777 for p in [made.retail_video, *jpegs]} == {0o644}
    assert made.retail_frames_dir.stat().st_mode & 0o777 == 0o755
    recorded = json.loads((folder / "media.json").read_text(encoding="utf-8"))
    assert recorded["recipe"]["retail"]["ean13"] == media.RETAIL_EAN13
    assert {"retail.mp4", "retail_frames/frame_0011.jpg"} <= set(recorded["files"])


def test_every_video_frame_and_jpeg_gives_the_ean13(made: media.SampleMedia) -> None:
    layout = media.retail_layout()
    frames = video_frames(made.retail_video)
    where = []
    for index, frame in enumerate(frames):
        found = read_ean13(frame)
        assert [(text, fmt) for text, fmt, _ in found] == [(media.RETAIL_EAN13, "EAN13")], index
        # where the layout says the barcode is
        x0, y0, x1, y1 = moved(layout.barcode, index)
        bx0, by0, bx1, by1 = found[0][2]
        assert x0 - 2 <= bx0 < bx1 <= x1 + 2 and y0 - 2 <= by0 < by1 <= y1 + 2, (index, found[0][2])
        where.append(np.array(found[0][2]))
    # the barcode moves, gently: mid-video its corners are a few pixels from where they started
    shift = np.abs(where[45] - where[0]).max()
    assert 3 < shift < 20, (where[0], where[45])
    for path in made.retail_frames:
        assert [(t, f) for t, f, _ in read_ean13(cv2.imread(str(path)))] == [(media.RETAIL_EAN13, "EAN13")]


def test_the_label_stays_whole_upright_and_large_in_every_frame(made: media.SampleMedia) -> None:
    layout = media.retail_layout()
    assert media.RETAIL_TEXTS == ("ORGANIC MILK 1L", "2.49")
    assert media.RETAIL_EAN13 == "5901234123457"
    frames = video_frames(made.retail_video)
    for index, frame in enumerate(frames):
        matrix = media.retail_transform(index)
        assert matrix[0, 1] == matrix[1, 0] == 0  # no rotation or shear: upright
        x0, y0, x1, y1 = moved(layout.label, index)
        assert 8 <= x0 < x1 <= WIDTH - 8 and 8 <= y0 < y1 <= HEIGHT - 8, (index, (x0, y0, x1, y1))
        # the price's glyphs at the text detector's input size (the frame's own size, 640x480)
        px0, py0, px1, py1 = moved(layout.price, index)
        assert py1 - py0 >= 28
        # the price really is there: dark ink on the white label, with white around it
        inside = frame[int(py0) + 2 : int(py1) - 2, int(px0) + 2 : int(px1) - 2].min(axis=2)
        assert (inside < 80).mean() > 0.15, index
        ring = frame[int(py0) - 10 : int(py0) - 4, int(px0) : int(px1)].min(axis=2)
        assert ring.min() > 170, index
        # the label's border is dark, just inside its outline
        left = frame[int(y0) + 20 : int(y1) - 20, round(x0) + 1].max(axis=1)
        assert left.max() < 110, index
    # the name sits above the price, the barcode below it, all on the label
    for part in (layout.name, layout.price, layout.barcode):
        px, py, pw, ph = part
        lx, ly, lw, lh = layout.label
        assert lx < px and px + pw < lx + lw and ly < py and py + ph < ly + lh
    assert (
        layout.name[1] + layout.name[3]
        < layout.price[1]
        < layout.price[1] + layout.price[3]
        < layout.barcode[1]
    )


def test_rendering_is_deterministic(made: media.SampleMedia) -> None:
    first = media.render_retail_frames(made.photo)
    second = media.render_retail_frames(made.photo)
    assert len(first) == len(second) == media.VIDEO_FRAMES
    assert all(np.array_equal(a, b) for a, b in zip(first, second, strict=True))


def test_a_changed_recipe_renders_again(made: media.SampleMedia, monkeypatch: pytest.MonkeyPatch) -> None:
    marker = made.photo.parent / "media.json"
    assert not media.ensure_sample_media(console=quiet()).changed

    # media made before the retail scene existed: a recipe without it, the files it listed
    old = json.loads(marker.read_text(encoding="utf-8"))
    old["recipe"].pop("retail")
    marker.write_text(json.dumps(old), encoding="utf-8")
    again = media.ensure_sample_media(console=quiet())
    assert again.changed
    assert json.loads(marker.read_text(encoding="utf-8"))["recipe"] == media.RECIPE

    # another barcode: the recipe records it, so the cached files are rendered again with it
    other = "4006381333931"
    monkeypatch.setattr(media, "RETAIL_EAN13", other)
    recipe = json.loads(json.dumps(media.RECIPE))
    recipe["retail"]["ean13"] = other
    monkeypatch.setattr(media, "RECIPE", recipe)
    changed = media.ensure_sample_media(console=quiet())
    assert changed.changed
    assert [t for t, _, _ in read_ean13(video_frames(changed.retail_video)[30])] == [other]
    assert json.loads(marker.read_text(encoding="utf-8"))["recipe"]["retail"]["ean13"] == other


def test_damaged_retail_files_render_again(made: media.SampleMedia) -> None:
    (made.retail_frames_dir / "frame_0005.jpg").unlink()
    repaired = media.ensure_sample_media(console=quiet())
    assert repaired.changed
    assert len(repaired.retail_frames) == 12

    with made.retail_video.open("ab") as handle:
        handle.write(b"\0")
    assert media.ensure_sample_media(console=quiet()).changed
    assert len(video_frames(made.retail_video)) == media.VIDEO_FRAMES


def test_cli_prints_the_retail_paths(cache: Path, tmp_path: Path) -> None:
    out = tmp_path / "m"
    result = CliRunner().invoke(main, ["media", "sample", "--out", str(out)])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert f"retail video:  {out / 'retail.mp4'}" in lines
    assert f"retail frames: {out / 'retail_frames'}" in lines
    assert f"video:  {out / 'sample.mp4'}" in lines
    assert "retail.mp4" in result.stderr
