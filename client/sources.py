"""Frame sources: a video file (optionally looping), a folder of images, an RTSP URL, /dev/videoN.

Files and folders are read on demand (the pipeline sets the pace). Live sources (RTSP, devices) are
read by their own thread that keeps only the newest frame, so a slow consumer never builds latency,
and that thread reopens a dropped stream with backoff."""

from __future__ import annotations

import fnmatch
import logging
import os
import threading
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from .backoff import Backoff
from .errors import SourceError
from .profile import DeviceInput, ImagesInput, InputSource, LoadedProfile, RtspInput, VideoInput

log = logging.getLogger("client.source")

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}


class EndOfStream(Exception):
    """The source has no more frames (a non-looping file or folder reached its end)."""


class FrameSource(Protocol):
    description: str

    def open(self) -> None: ...

    def read(self, timeout: float) -> np.ndarray | None:
        """The next frame, None when none arrived within `timeout`; raises EndOfStream at the end."""
        ...

    def close(self) -> None: ...


class VideoFileSource:
    def __init__(self, path: Path, loop: bool, key: str, profile_file: Path) -> None:
        self.path = path
        self.loop = loop
        self.key = key
        self.profile_file = profile_file
        self.description = f"video {path}"
        self._capture: cv2.VideoCapture | None = None
        self._first: np.ndarray | None = None

    def open(self) -> None:
        if not self.path.is_file():
            raise SourceError(
                f"video file {self.path} does not exist",
                file=self.profile_file,
                key=self.key,
                fix="mount the file into the client or point CLIENT_INPUT at an existing one",
            )
        capture = cv2.VideoCapture(str(self.path))
        ok, frame = capture.read() if capture.isOpened() else (False, None)
        if not ok:
            capture.release()
            raise SourceError(
                f"video file {self.path} cannot be decoded", file=self.profile_file, key=self.key
            )
        self._capture = capture
        self._first = frame

    def read(self, timeout: float) -> np.ndarray | None:
        capture = self._capture
        if capture is None:
            raise EndOfStream
        if self._first is not None:
            frame, self._first = self._first, None
            return frame
        ok, frame = capture.read()
        if ok:
            return frame
        if not self.loop:
            raise EndOfStream
        # Rewinding is not reliable for every container; reopening is.
        capture.release()
        capture = cv2.VideoCapture(str(self.path))
        self._capture = capture
        ok, frame = capture.read()
        if not ok:
            log.warning("%s: cannot read after rewinding; stream ends", self.description)
            raise EndOfStream
        return frame

    def close(self) -> None:
        if self._capture is not None:
            self._capture.release()
            self._capture = None


class ImageFolderSource:
    def __init__(self, path: Path, pattern: str, loop: bool, key: str, profile_file: Path) -> None:
        self.path = path
        self.pattern = pattern
        self.loop = loop
        self.key = key
        self.profile_file = profile_file
        self.description = f"images {path}/{pattern}"
        self._files: list[Path] = []
        self._next = 0

    def open(self) -> None:
        if not self.path.is_dir():
            raise SourceError(
                f"image folder {self.path} does not exist", file=self.profile_file, key=self.key
            )
        self._files = sorted(
            p
            for p in self.path.iterdir()
            if p.suffix.lower() in IMAGE_SUFFIXES and fnmatch.fnmatch(p.name, self.pattern) and p.is_file()
        )
        if not self._files:
            raise SourceError(
                f"image folder {self.path} holds no images matching {self.pattern!r} "
                f"({', '.join(sorted(IMAGE_SUFFIXES))})",
                file=self.profile_file,
                key=self.key,
            )
        self._next = 0

    def read(self, timeout: float) -> np.ndarray | None:
        for _ in range(len(self._files)):
            if self._next >= len(self._files):
                if not self.loop:
                    raise EndOfStream
                self._next = 0
            path = self._files[self._next]
            self._next += 1
            frame = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if frame is not None:
                return frame
            log.warning("%s: cannot decode %s; skipped", self.description, path.name)
        raise EndOfStream

    def close(self) -> None:
        self._files = []


class LiveSource:
    """RTSP or a V4L2 device: a reader thread keeps the newest frame and reopens with backoff."""

    def __init__(
        self,
        description: str,
        target: str | int,
        api: int,
        backoff: Backoff,
        properties: dict[int, float] | None = None,
    ) -> None:
        self.description = description
        self._target = target
        self._api = api
        self._backoff = backoff
        self._properties = properties or {}
        self._cond = threading.Condition()
        self._frame: np.ndarray | None = None
        self._sequence = 0
        self._delivered = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.reconnects = 0

    def _open_capture(self) -> cv2.VideoCapture | None:
        capture = cv2.VideoCapture(self._target, self._api)
        for prop, value in self._properties.items():
            capture.set(prop, value)
        if capture.isOpened():
            return capture
        capture.release()
        return None

    def open(self) -> None:
        capture = self._open_capture()
        if capture is None:
            log.error("%s: cannot be opened; retrying with backoff", self.description)
        self._thread = threading.Thread(
            target=self._run, args=(capture,), name=f"reader {self.description}", daemon=True
        )
        self._thread.start()

    def _run(self, capture: cv2.VideoCapture | None) -> None:
        while not self._stop.is_set():
            if capture is None:
                delay = self._backoff.next_delay()
                if self._stop.wait(delay):
                    break
                capture = self._open_capture()
                if capture is None:
                    log.warning("%s: still unavailable; retrying", self.description)
                    continue
                self.reconnects += 1
                log.warning("%s: reopened", self.description)
            ok, frame = capture.read()
            if not ok:
                log.warning("%s: stream dropped; reopening", self.description)
                capture.release()
                capture = None
                continue
            self._backoff.reset()
            with self._cond:
                self._frame = frame
                self._sequence += 1
                self._cond.notify_all()
        if capture is not None:
            capture.release()

    def read(self, timeout: float) -> np.ndarray | None:
        with self._cond:
            if not self._cond.wait_for(lambda: self._sequence > self._delivered, timeout):
                return None
            self._delivered = self._sequence
            return self._frame

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)


def make_source(source: InputSource, index: int, loaded: LoadedProfile) -> FrameSource:
    """Build (not open) the source of `inputs[index]`."""
    key = f"inputs[{index}]"
    resilience = loaded.profile.resilience
    if isinstance(source, VideoInput):
        return VideoFileSource(loaded.resolve_path(source.path), source.loop, f"{key}.path", loaded.file)
    if isinstance(source, ImagesInput):
        return ImageFolderSource(
            loaded.resolve_path(source.path), source.pattern, source.loop, f"{key}.path", loaded.file
        )
    backoff = Backoff(resilience.backoff_initial_s, resilience.reopen_backoff_max_s)
    if isinstance(source, RtspInput):
        # The FFmpeg backend reads its options from the environment when a capture opens.
        os.environ["OPENCV_FFMPEG_CAPTURE_OPTIONS"] = f"rtsp_transport;{source.transport}"
        return LiveSource(f"rtsp {_redact(source.url)}", source.url, cv2.CAP_FFMPEG, backoff)
    assert isinstance(source, DeviceInput)
    if not Path(source.path).exists():
        raise SourceError(f"video device {source.path} does not exist", file=loaded.file, key=f"{key}.path")
    properties: dict[int, float] = {}
    if source.width:
        properties[cv2.CAP_PROP_FRAME_WIDTH] = source.width
    if source.height:
        properties[cv2.CAP_PROP_FRAME_HEIGHT] = source.height
    if source.fps:
        properties[cv2.CAP_PROP_FPS] = source.fps
    device = int(source.path.removeprefix("/dev/video"))
    return LiveSource(f"device {source.path}", device, cv2.CAP_V4L2, backoff, properties)


def _redact(url: str) -> str:
    """rtsp://user:password@host/… -> rtsp://user:***@host/… for logs."""
    scheme, sep, rest = url.partition("://")
    credentials, at, host = rest.partition("@")
    if at and ":" in credentials:
        return f"{scheme}{sep}{credentials.split(':', 1)[0]}:***@{host}"
    return url
