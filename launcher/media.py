"""Sample media for demos and tests, made by code: a photo with a person, a short video, JPEG frames,
and a retail scene (the photo with a price label and an EAN-13 barcode) as video and frames.

    cache_dir()/media/astronaut.png      from the scikit-image wheel (public domain), sha256-checked
                      sample.mp4         6 s, 15 fps, 640x480, mp4v: a slow pan/zoom over the photo
                      frames/frame_0000.jpg ... frame_0011.jpg   every 8th frame of the video
                      retail.mp4         6 s, 15 fps, 640x480, mp4v: the photo with a price label
                                         ("ORGANIC MILK 1L", "2.49", EAN-13 5901234123457), a gentle
                                         zoom and drift that keeps the label whole and upright
                      retail_frames/frame_0000.jpg ... frame_0011.jpg   every 8th frame of retail.mp4
                      media.json         recipe and sha256 of every file (a re-run checks it)

Each file is written beside its target and renamed into place; a second run does nothing.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import stat
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from rich.console import Console

from launcher.errors import ExternalError, LauncherError
from launcher.models.fetch import Want, fetch_pypi, sha256_file
from launcher.models.repository import cache_lock
from launcher.paths import cache_dir, default_certs_dir

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
RETAIL_VIDEO_NAME = "retail.mp4"
RETAIL_FRAMES_NAME = "retail_frames"
MARKER_NAME = "media.json"
JPEG_QUALITY = 90

# The retail scene. Its frames are the text detector's input size (640x480), so these are the sizes
# the detector sees: the price's digits are 38 px high (38-39.5 as the video zooms), the product
# name's capitals 24 px; the barcode's narrowest bar is 3 px wide (2 px bars do not survive the
# sub-pixel motion: zxing-cpp then misses about one frame in eight). PP-OCRv4 reads both lines
# exactly on every frame, the angle classifier calls both upright.
RETAIL_TEXTS = ("ORGANIC MILK 1L", "2.49")
RETAIL_EAN13 = "5901234123457"  # a valid EAN-13 (check digit 7)
RETAIL_LABEL = (244, 244, 380, 204)  # x, y, width, height in frame 0 (white, 3 px black border)
RETAIL_FONT = "FONT_HERSHEY_SIMPLEX"  # cv2's Hershey font: the same glyphs everywhere, no system fonts
RETAIL_NAME_SCALE = 1.1
RETAIL_PRICE_SCALE = 1.8
RETAIL_TEXT_THICKNESS = 2
RETAIL_PADDING = 14  # label edge to the name's cv2.getTextSize box, and to the barcode's bottom
RETAIL_LINE_GAP = 16  # name baseline to the price's getTextSize box; price baseline to the barcode, at least
RETAIL_BARCODE_MODULE = 3  # pixels per EAN-13 module
RETAIL_BARCODE_HEIGHT = 64
RETAIL_ZOOM = 0.04  # at most 4 % larger mid-video, around the label's centre
RETAIL_DRIFT = (-10.0, -6.0)  # and moved by at most this many pixels (x, y)
# the photo behind the label: scaled by 1.25 to the frame's width, its top 480 rows
RETAIL_BACKGROUND_SCALE = VIDEO_SIZE[0] / 512

RECIPE: dict[str, Any] = {
    "generator": 2,
    "photo_sha256": PHOTO_SHA256,
    "size": list(VIDEO_SIZE),
    "fps": VIDEO_FPS,
    "frames": VIDEO_FRAMES,
    "frame_step": FRAME_STEP,
    "fourcc": FOURCC,
    "retail": {
        "generator": 1,  # bump when the retail rendering changes in a way the keys below do not record
        "texts": list(RETAIL_TEXTS),
        "ean13": RETAIL_EAN13,
        "label": list(RETAIL_LABEL),
        "font": RETAIL_FONT,
        "name_scale": RETAIL_NAME_SCALE,
        "price_scale": RETAIL_PRICE_SCALE,
        "thickness": RETAIL_TEXT_THICKNESS,
        "padding": RETAIL_PADDING,
        "line_gap": RETAIL_LINE_GAP,
        "barcode_module": RETAIL_BARCODE_MODULE,
        "barcode_height": RETAIL_BARCODE_HEIGHT,
        "zoom": RETAIL_ZOOM,
        "drift": list(RETAIL_DRIFT),
        "background_scale": RETAIL_BACKGROUND_SCALE,
        "jpeg_quality": JPEG_QUALITY,
    },
}


@dataclass(frozen=True)
class SampleMedia:
    photo: Path
    video: Path
    frames_dir: Path
    retail_video: Path
    retail_frames_dir: Path
    changed: bool = False

    @property
    def frames(self) -> list[Path]:
        return sorted(self.frames_dir.glob("frame_*.jpg"))

    @property
    def retail_frames(self) -> list[Path]:
        return sorted(self.retail_frames_dir.glob("frame_*.jpg"))


Box = tuple[int, int, int, int]


@dataclass(frozen=True)
class RetailLayout:
    """Where the retail scene's parts are in frame 0: boxes (x, y, width, height) in frame pixels, a
    text's box the extent of its ink (rendered, not estimated). Later frames: `retail_transform`."""

    label: Box  # the white label, its 3 px black border included
    name: Box  # RETAIL_TEXTS[0]
    price: Box  # RETAIL_TEXTS[1]
    barcode: Box  # the barcode image, its quiet zones included
    name_origin: tuple[int, int]  # cv2.putText's origin (left end of the baseline)
    price_origin: tuple[int, int]


def media_dir() -> Path:
    return cache_dir() / "media"


def _layout(out: Path) -> SampleMedia:
    retail = (out / RETAIL_VIDEO_NAME, out / RETAIL_FRAMES_NAME)
    return SampleMedia(out / PHOTO_NAME, out / VIDEO_NAME, out / FRAMES_NAME, *retail)


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


def _barcode_image() -> Any:
    """The EAN-13 symbol as zxing-cpp writes it (one pixel per module, quiet zones included: 113
    modules), widened to RETAIL_BARCODE_MODULE pixels per module and cut to RETAIL_BARCODE_HEIGHT."""
    import cv2
    import numpy as np

    try:
        import zxingcpp
    except ImportError as exc:
        raise ExternalError(
            "the retail sample needs zxing-cpp, which is not installed in this environment",
            fix="reinstall the launcher (`pip install -e .`, zxing-cpp is one of its dependencies)",
        ) from exc
    symbol = zxingcpp.create_barcode(RETAIL_EAN13, zxingcpp.BarcodeFormat.EAN13)
    bars = np.asarray(symbol.to_image(scale=1, add_quiet_zones=True, add_hrt=False), dtype=np.uint8)
    if bars.ndim == 3:
        bars = bars[:, :, 0]
    size = (bars.shape[1] * RETAIL_BARCODE_MODULE, RETAIL_BARCODE_HEIGHT)
    return cv2.resize(bars, size, interpolation=cv2.INTER_NEAREST)


def _ink(text: str, scale: float, origin: tuple[int, int]) -> Box:
    """The box of the pixels cv2.putText inks for `text` at `origin` in a frame."""
    import cv2
    import numpy as np

    canvas = np.zeros((VIDEO_SIZE[1], VIDEO_SIZE[0]), dtype=np.uint8)
    font = getattr(cv2, RETAIL_FONT)
    cv2.putText(canvas, text, origin, font, scale, 255, RETAIL_TEXT_THICKNESS, cv2.LINE_AA)
    x, y, w, h = cv2.boundingRect(cv2.findNonZero(canvas))
    return int(x), int(y), int(w), int(h)


def retail_layout() -> RetailLayout:
    """The label's parts in frame 0: the name centred at the top, the price centred below it, the
    barcode centred at the bottom."""
    import cv2

    font = getattr(cv2, RETAIL_FONT)
    x, y, w, h = RETAIL_LABEL
    name_text, price_text = RETAIL_TEXTS
    (name_w, name_h), _ = cv2.getTextSize(name_text, font, RETAIL_NAME_SCALE, RETAIL_TEXT_THICKNESS)
    (price_w, price_h), _ = cv2.getTextSize(price_text, font, RETAIL_PRICE_SCALE, RETAIL_TEXT_THICKNESS)
    name_origin = (x + (w - name_w) // 2, y + RETAIL_PADDING + name_h)
    price_origin = (x + (w - price_w) // 2, name_origin[1] + RETAIL_LINE_GAP + price_h)
    bar_w = 113 * RETAIL_BARCODE_MODULE  # EAN-13: 95 modules and quiet zones of 11 and 7
    bar_y = y + h - RETAIL_PADDING - RETAIL_BARCODE_HEIGHT
    barcode = (x + (w - bar_w) // 2, bar_y, bar_w, RETAIL_BARCODE_HEIGHT)
    crowded = price_origin[1] + RETAIL_LINE_GAP > bar_y
    if crowded or max(name_w, price_w, bar_w) > w - 2 * RETAIL_PADDING:
        raise ExternalError(f"the retail label {RETAIL_LABEL} is too small for its text and barcode")
    return RetailLayout(
        label=RETAIL_LABEL,
        name=_ink(name_text, RETAIL_NAME_SCALE, name_origin),
        price=_ink(price_text, RETAIL_PRICE_SCALE, price_origin),
        barcode=barcode,
        name_origin=name_origin,
        price_origin=price_origin,
    )


def retail_transform(index: int) -> Any:
    """The 2x3 affine matrix from the still scene to retail video frame `index`: a zoom of at most
    RETAIL_ZOOM around the label's centre and a drift of at most RETAIL_DRIFT, there and back (the
    video loops without a jump). No rotation: the label stays upright."""
    import numpy as np

    swing = math.sin(math.pi * index / (VIDEO_FRAMES - 1))
    x, y, w, h = RETAIL_LABEL
    cx, cy = x + w / 2, y + h / 2
    scale = 1.0 + RETAIL_ZOOM * swing
    dx, dy = RETAIL_DRIFT[0] * swing, RETAIL_DRIFT[1] * swing
    return np.array([[scale, 0.0, cx - scale * cx + dx], [0.0, scale, cy - scale * cy + dy]])


def retail_scene(photo: Path) -> Any:
    """The still retail scene (BGR, 640x480): the photo, the label with its text and barcode."""
    import cv2
    import numpy as np

    image = cv2.imread(str(photo), cv2.IMREAD_COLOR)
    if image is None:
        raise ExternalError(f"cannot read {photo} as an image", fix=f"delete {photo} and run again")
    scale = RETAIL_BACKGROUND_SCALE
    scene = cv2.warpAffine(
        image,
        np.array([[scale, 0.0, 0.0], [0.0, scale, 0.0]]),
        VIDEO_SIZE,
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REFLECT,
    )
    layout = retail_layout()
    x, y, w, h = layout.label
    cv2.rectangle(scene, (x, y), (x + w - 1, y + h - 1), (255, 255, 255), cv2.FILLED)
    cv2.rectangle(scene, (x, y), (x + w - 1, y + h - 1), (0, 0, 0), 3)
    font = getattr(cv2, RETAIL_FONT)
    for text, origin, size in zip(
        RETAIL_TEXTS,
        (layout.name_origin, layout.price_origin),
        (RETAIL_NAME_SCALE, RETAIL_PRICE_SCALE),
        strict=True,
    ):
        cv2.putText(scene, text, origin, font, size, (0, 0, 0), RETAIL_TEXT_THICKNESS, cv2.LINE_AA)
    bx, by, bw, bh = layout.barcode
    bars = _barcode_image()
    if bars.shape != (bh, bw):
        got = f"{bars.shape[1]}x{bars.shape[0]}"
        raise ExternalError(f"zxing-cpp wrote an EAN-13 of {got} px, expected {bw}x{bh}")
    scene[by : by + bh, bx : bx + bw] = bars[:, :, None]
    return scene


def render_retail_frames(photo: Path) -> list[Any]:
    """The retail video's frames (BGR arrays)."""
    import cv2

    scene = retail_scene(photo)
    return [
        cv2.warpAffine(
            scene, retail_transform(index), VIDEO_SIZE, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT
        )
        for index in range(VIDEO_FRAMES)
    ]


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
            if not cv2.imwrite(str(path), frame, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY]):
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
    files = [media.photo, media.video, *media.frames, media.retail_video, *media.retail_frames]
    return {str(path.relative_to(media.photo.parent)): sha256_file(path) for path in files}


def _up_to_date(media: SampleMedia, marker: Path) -> bool:
    try:
        recorded = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if not isinstance(recorded, dict) or recorded.get("recipe") != RECIPE:
        return False
    files = recorded.get("files")
    expected = len(range(0, VIDEO_FRAMES, FRAME_STEP))
    if not isinstance(files, dict) or len(media.frames) != expected or len(media.retail_frames) != expected:
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
    """Make (or find up to date) the sample photo, video and frames, and the retail scene's video and
    frames, under `out` (default `cache_dir()/media`)."""
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
    with console.status("sample media: rendering videos and frames"):
        frames = render_frames(media.photo)
        _write_video(frames, media.video)
        _write_frames(frames, media.frames_dir)
        retail = render_retail_frames(media.photo)
        _write_video(retail, media.retail_video)
        _write_frames(retail, media.retail_frames_dir)
    record = {"recipe": RECIPE, "files": _hashes(media)}
    _write_atomic(marker, json.dumps(record, indent=2, sort_keys=True) + "\n")
    console.print(
        f"sample media: wrote {PHOTO_NAME}, {VIDEO_NAME} and {RETAIL_VIDEO_NAME} ({VIDEO_FRAMES} frames "
        f"each), {len(media.frames)} frames in {FRAMES_NAME}/ and {len(media.retail_frames)} in "
        f"{RETAIL_FRAMES_NAME}/ in {folder}"
    )
    return replace(media, changed=True)


MANIFEST_RECIPE: dict[str, Any] = {"manifest": 1}  # a folder of the operator's own files


def _pki_overlap(folder: Path, certs: Path) -> str | None:
    """Why `folder` may not be a media folder for the PKI folder `certs` (None when it may): inside it,
    it, or holding it (links resolved)."""
    media, pki = folder.resolve(), certs.expanduser().resolve()
    if media == pki or pki in media.parents:
        return f"{folder} is inside the PKI folder {pki}"
    if media in pki.parents:
        return f"{folder} holds the PKI folder {pki}"
    return None


def write_manifest(folder: Path, certs_dir: Path | None = None) -> dict[str, str]:
    """Write `folder`/media.json for the operator's own media: every regular file under it (media.json
    aside) with its sha256, the list the client role ships (plugins/lookup/ovms_media.py) and nothing
    else. A symbolic link, a hard link (a file with more than one name), a FIFO or a device anywhere in
    the folder is refused: the role would refuse it too, and the file may come from elsewhere. So is a
    hidden file or folder (a name starting with a dot: media are videos and images, a dotfile is a key,
    a .git folder, an editor's file), and a folder inside or holding the PKI folder (`certs_dir`, by
    default the launcher's: $OVMS_LAUNCHER_CERTS_DIR, else certs/ of the checkout)."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise LauncherError(f"{folder} is not a folder", fix="give the folder of the media files")
    overlap = _pki_overlap(folder, default_certs_dir() if certs_dir is None else certs_dir)
    if overlap:
        raise LauncherError(
            f"{overlap}: a media folder is shipped to the hosts, the PKI's keys never are",
            file=folder,
            fix="put the media files in a folder of their own, away from the certificates",
        )
    files: dict[str, str] = {}
    for root, dirs, names in os.walk(folder):  # never descends into a linked folder
        for entry in sorted(dirs + names):
            path = Path(root) / entry
            name = path.relative_to(folder).as_posix()
            if entry.startswith("."):
                raise LauncherError(
                    f"{name!r} is hidden (its name starts with a dot): a media folder ships videos and "
                    "images, and a hidden file or folder is something else (a key, a .git folder, an "
                    "editor's file)",
                    file=path,
                    fix="move it out of the media folder, or remove it",
                )
            info = path.lstat()
            if stat.S_ISDIR(info.st_mode):
                continue
            if not stat.S_ISREG(info.st_mode):
                what = "a symbolic link" if stat.S_ISLNK(info.st_mode) else "no regular file"
                raise LauncherError(
                    f"{name!r} is {what}: a media folder ships regular files only, never following a link",
                    file=path,
                    fix="replace it with a copy of the file itself, or remove it",
                )
            if info.st_nlink > 1:
                raise LauncherError(
                    f"{name!r} is a hard link ({info.st_nlink} names for one file): it may be a file from "
                    "elsewhere on the controller",
                    file=path,
                    fix=f"replace it with a copy (cp --remove-destination SOURCE {path}), or remove it",
                )
            if name != MARKER_NAME:
                files[name] = sha256_file(path)
    if not files:
        raise LauncherError(f"{folder} holds no files", fix="put the media files in it first")
    _write_atomic(
        folder / MARKER_NAME,
        json.dumps({"recipe": MANIFEST_RECIPE, "files": files}, indent=2, sort_keys=True) + "\n",
    )
    return files
