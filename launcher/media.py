"""Sample media for demos and tests, made by code: a photo with a person, a short video, JPEG frames.

    cache_dir()/media/astronaut.png      from the scikit-image wheel (public domain), sha256-checked
                      sample.mp4         6 s, 15 fps, 640x480, mp4v: a slow pan/zoom over the photo
                      frames/frame_0000.jpg ... frame_0011.jpg   every 8th frame of the video
                      media.json         recipe and sha256 of every file (a re-run checks it)

Each file is written beside its target and renamed into place; a second run does nothing.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from launcher.errors import ExternalError
from launcher.models.fetch import Want, fetch_pypi, sha256_file
from launcher.models.repository import cache_lock
from launcher.paths import cache_dir

SKIMAGE_VERSION = "0.25.2"
PHOTO_MEMBER = "skimage/data/astronaut.png"
PHOTO_SHA256 = "88431cd9653ccd539741b555fb0a46b61558b301d4110412b5bc28b5e3ea6cb5"
# the wheel for the interpreter the images use, whatever the controller's own platform is
WHEEL_PLATFORM = (
    "--platform",
    "manylinux2014_x86_64",
    "--python-version",
    "3.11",
    "--implementation",
    "cp",
    "--abi",
    "cp311",
)

VIDEO_SIZE = (640, 480)
VIDEO_FPS = 15
VIDEO_FRAMES = 90  # 6 seconds
FRAME_STEP = 8  # frames/ keeps every 8th video frame: 12 JPEGs
FOURCC = "mp4v"

PHOTO_NAME = "astronaut.png"
VIDEO_NAME = "sample.mp4"
FRAMES_NAME = "frames"
MARKER_NAME = "media.json"

RECIPE: dict[str, Any] = {
    "generator": 2,
    "photo_sha256": PHOTO_SHA256,
    "size": list(VIDEO_SIZE),
    "fps": VIDEO_FPS,
    "frames": VIDEO_FRAMES,
    "frame_step": FRAME_STEP,
    "fourcc": FOURCC,
}


@dataclass(frozen=True)
class SampleMedia:
    photo: Path
    video: Path
    frames_dir: Path
    changed: bool = False

    @property
    def frames(self) -> list[Path]:
        return sorted(self.frames_dir.glob("frame_*.jpg"))


def media_dir() -> Path:
    return cache_dir() / "media"


def _layout(out: Path) -> SampleMedia:
    return SampleMedia(out / PHOTO_NAME, out / VIDEO_NAME, out / FRAMES_NAME)


def _crop(index: int, photo_w: int, photo_h: int) -> tuple[float, float, float, float]:
    """The photo rectangle (x, y, w, h) shown in video frame `index`: from the whole width, zoom in
    to 75 % while drifting right and down over the person, then back, so she stays in view (the
    person detector scores >= 0.85 on every frame) and the video loops without a jump."""
    t = index / (VIDEO_FRAMES - 1)
    swing = math.sin(math.pi * t)
    aspect = VIDEO_SIZE[1] / VIDEO_SIZE[0]
    full_w = min(photo_w, photo_h / aspect)
    w = full_w * (1.0 - 0.25 * swing)
    h = w * aspect
    return (photo_w - w) * 0.2 * swing, (photo_h - h) * 0.3 * swing, w, h


def render_frames(photo: Path) -> list[Any]:
    """The video's frames (BGR arrays), rendered with sub-pixel smooth motion."""
    import cv2
    import numpy as np

    image = cv2.imread(str(photo), cv2.IMREAD_COLOR)
    if image is None:
        raise ExternalError(f"cannot read {photo} as an image", fix=f"delete {photo} and run again")
    photo_h, photo_w = image.shape[:2]
    frames = []
    for index in range(VIDEO_FRAMES):
        x, y, w, _h = _crop(index, photo_w, photo_h)
        scale = VIDEO_SIZE[0] / w
        matrix = np.array([[scale, 0.0, -x * scale], [0.0, scale, -y * scale]])
        frames.append(
            cv2.warpAffine(image, matrix, VIDEO_SIZE, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        )
    return frames


def _write_video(frames: list[Any], target: Path) -> None:
    import cv2

    fd, name = tempfile.mkstemp(prefix=f".{target.stem}.", suffix=target.suffix, dir=target.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*FOURCC), VIDEO_FPS, VIDEO_SIZE)
        if not writer.isOpened():
            raise ExternalError(f"OpenCV cannot write {FOURCC} video to {tmp}")
        for frame in frames:
            writer.write(frame)
        writer.release()
        tmp.chmod(0o644)
        tmp.replace(target)
    finally:
        tmp.unlink(missing_ok=True)


def _write_frames(frames: list[Any], target: Path) -> None:
    import cv2

    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    old = target.with_name(f".{target.name}.old-{os.getpid()}")
    try:
        for number, frame in enumerate(frames[::FRAME_STEP]):
            path = tmp / f"frame_{number:04d}.jpg"
            if not cv2.imwrite(str(path), frame, [cv2.IMWRITE_JPEG_QUALITY, 90]):
                raise ExternalError(f"OpenCV cannot write {path}")
            path.chmod(0o644)
        tmp.chmod(0o755)
        if target.exists():
            target.rename(old)
        tmp.rename(target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)


def _hashes(media: SampleMedia) -> dict[str, str]:
    files = [media.photo, media.video, *media.frames]
    return {str(path.relative_to(media.photo.parent)): sha256_file(path) for path in files}


def _up_to_date(media: SampleMedia, marker: Path) -> bool:
    try:
        recorded = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if not isinstance(recorded, dict) or recorded.get("recipe") != RECIPE:
        return False
    files = recorded.get("files")
    if not isinstance(files, dict) or len(media.frames) != len(range(0, VIDEO_FRAMES, FRAME_STEP)):
        return False
    try:
        return _hashes(media) == files
    except OSError:
        return False


def _write_atomic(path: Path, text: str) -> None:
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    Path(name).chmod(0o644)
    Path(name).replace(path)


def _fetch_photo(target: Path, console: Console) -> None:
    want = Want("sample media", PHOTO_SHA256)
    (cached,) = fetch_pypi("scikit-image", SKIMAGE_VERSION, [(PHOTO_MEMBER, want)], console, WHEEL_PLATFORM)
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    os.close(fd)
    try:
        shutil.copyfile(cached, name)
        Path(name).chmod(0o644)
        Path(name).replace(target)
    finally:
        Path(name).unlink(missing_ok=True)


def ensure_sample_media(out: Path | None = None, *, console: Console | None = None) -> SampleMedia:
    """Make (or find up to date) the sample photo, video and frames under `out` (default
    `cache_dir()/media`)."""
    console = console or Console(stderr=True, soft_wrap=True)
    folder = Path(out).expanduser().resolve() if out else media_dir()
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o755)  # clients' containers read it as another user
    media = _layout(folder)
    with cache_lock("media"):
        return _ensure(media, folder, console)


def _ensure(media: SampleMedia, folder: Path, console: Console) -> SampleMedia:
    marker = folder / MARKER_NAME
    if _up_to_date(media, marker):
        console.print(f"sample media: up to date in {folder}")
        return media
    marker.unlink(missing_ok=True)
    if not (media.photo.is_file() and sha256_file(media.photo) == PHOTO_SHA256):
        _fetch_photo(media.photo, console)
    with console.status("sample media: rendering video and frames"):
        frames = render_frames(media.photo)
        _write_video(frames, media.video)
        _write_frames(frames, media.frames_dir)
    record = {"recipe": RECIPE, "files": _hashes(media)}
    _write_atomic(marker, json.dumps(record, indent=2, sort_keys=True) + "\n")
    console.print(
        f"sample media: wrote {PHOTO_NAME}, {VIDEO_NAME} ({VIDEO_FRAMES} frames) and "
        f"{len(media.frames)} frames in {folder}"
    )
    return SampleMedia(media.photo, media.video, media.frames_dir, changed=True)
