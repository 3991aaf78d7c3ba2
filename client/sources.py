"""Frame sources: a video file (optionally looping), a folder of images, an RTSP or HTTP(S) camera,
/dev/videoN.

Files and folders are read on demand (the pipeline sets the pace). Live sources (cameras) are read
by their own thread that keeps only the newest frame, so a slow consumer never builds latency; the
camera sets the pace and the profile's target_fps caps it. That thread tells a stall (the camera
connected but silent for stall_timeout_s: FFmpeg's read timeout fires) from a drop (the stream ended
or the connection closed: the read fails at once), reopens with backoff and counts both, and the
reopens that brought frames back (`reconnects`).

Camera URLs may carry credentials (from the profile, or inserted from OVMS_CAMERA_CREDENTIALS):
that URL goes to OpenCV only; descriptions, logs and stats carry the masked one (client/urls.py), and
so do file and folder paths (masked where they hold `user:password@`)."""

from __future__ import annotations

import contextlib
import fnmatch
import logging
import os
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np

from .backoff import Backoff
from .credentials import CameraCredentials
from .errors import SourceError
from .probe import diagnose
from .profile import (
    DeviceInput,
    HttpInput,
    ImagesInput,
    InputSource,
    LoadedProfile,
    RtspInput,
    VideoInput,
)
from .urls import endpoint, redact, redact_text, redact_url

log = logging.getLogger("client.source")

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}
# A read that took at least this share of stall_timeout_s ended by FFmpeg's read timeout: a stall
# (connected, no data). One that failed sooner: a drop (end of stream, connection closed). A frame
# that took that long counts as a stall too, so stall_timeout_s must exceed 1 / STALL_FRACTION (1.25)
# times the camera's frame interval (docs/profiles.md).
STALL_FRACTION = 0.8
# A failed open that took at least this share of open_timeout_s timed out (nothing answered).
OPEN_TIMEOUT_FRACTION = 0.8
# Devices have no profile key for it: the time without a frame after which one is reported stalled.
DEVICE_STALL_TIMEOUT_S = 5.0
PROBE_TIMEOUT_S = 5.0
# While a source stays unavailable, its unchanged reason is logged again every this many attempts.
REPEAT_EVERY = 10

READING, STALLED, RECONNECTING, ENDED = "reading", "stalled", "reconnecting", "ended"
# a live source that has not delivered a frame yet and whose attempts have not failed (yet): the
# first open is under way, or the camera opened and its first frame is on the way
CONNECTING = "connecting"


class EndOfStream(Exception):
    """The source has no more frames (a non-looping file or folder reached its end)."""


@dataclass(frozen=True)
class SourceStatus:
    """What a stats line reports about one stream's source."""

    input: str  # the file, folder, device or masked URL
    state: str  # connecting | reading | stalled | reconnecting | ended
    reconnects: int = 0
    stalls: int = 0
    drops: int = 0
    last_frame_age_s: float | None = None
    error: str | None = None  # why the source is not reading (None while it is)


class FrameSource(Protocol):
    description: str

    def open(self) -> None: ...

    def read(self, timeout: float) -> np.ndarray | None:
        """The next frame, None when none arrived within `timeout`; raises EndOfStream at the end."""
        ...

    def close(self) -> None: ...

    def status(self) -> SourceStatus: ...


# ---------------------------------------------------------------------------------------------------
# OpenCV's FFmpeg backend reads its options (the RTSP transport) from one process-wide environment
# variable when a capture opens. Each open sets it to what that source needs and restores it after;
# the variable never changes while an open is under way (another thread's getenv would race with it).
# Opens that need the same value (or none: a file) run side by side; one that needs another value
# waits until they are done. A camera that takes open_timeout_s to fail thus holds back only the
# opens of the other transport, and fairly: once an open waits for another value, later opens (of
# any value) queue behind it instead of keeping the current value in place for ever.


class CaptureOptions:
    VARIABLE = "OPENCV_FFMPEG_CAPTURE_OPTIONS"

    def __init__(self, environ: Any = os.environ) -> None:
        self._environ = environ
        self._cond = threading.Condition()
        self._active = 0
        self._value: str | None = None
        self._saved: str | None = None
        self._guarded = False
        self._tickets = 0
        self._waiting: dict[int, str | None] = {}  # ticket -> value, in arrival order

    @property
    def waiting(self) -> int:
        """Opens waiting for their turn."""
        with self._cond:
            return len(self._waiting)

    def _admissible(self, ticket: int, value: str | None) -> bool:
        if self._active and value is not None and value != self._value:
            return False  # the variable holds another value while opens are under way
        for older, wanted in self._waiting.items():
            if older >= ticket:
                break
            # an older open still waits: one needing another value goes first; an open that needs no
            # value joins no period ahead of any older open (it would only prolong the current one)
            if value is None or (wanted is not None and wanted != value):
                return False
        return True

    @contextlib.contextmanager
    def applied(self, value: str | None) -> Iterator[None]:
        """Hold `value` (None: any value will do) in the environment while the block opens a capture."""
        with self._cond:
            if not self._guarded:
                self._guarded = True
                _quiet_library_debug_logs(self._environ)
            ticket = self._tickets
            self._tickets += 1
            self._waiting[ticket] = value
            try:
                self._cond.wait_for(lambda: self._admissible(ticket, value))
            finally:
                del self._waiting[ticket]
                self._cond.notify_all()  # the opens behind this one may now go
            if self._active == 0:
                self._value = value
                if value is not None:
                    self._saved = self._environ.get(self.VARIABLE)
                    self._environ[self.VARIABLE] = value
            self._active += 1
        try:
            yield
        finally:
            with self._cond:
                self._active -= 1
                if self._active == 0:
                    if self._value is not None:
                        if self._saved is None:
                            self._environ.pop(self.VARIABLE, None)
                        else:
                            self._environ[self.VARIABLE] = self._saved
                    self._value = None
                    self._cond.notify_all()


CAPTURE_OPTIONS = CaptureOptions()


def _quiet_library_debug_logs(environ: Any) -> None:
    """FFmpeg's and OpenCV's debug logs print camera URLs, credentials included: keep them at
    warnings. Runs before the first capture of the process (FFmpeg reads its level once)."""
    lowered = []
    if environ.pop("OPENCV_FFMPEG_DEBUG", None) is not None:
        lowered.append("OPENCV_FFMPEG_DEBUG")
    level = environ.get("OPENCV_FFMPEG_LOGLEVEL")
    if level is not None:
        try:
            too_verbose = int(level) > 24  # AV_LOG_WARNING
        except ValueError:
            too_verbose = True
        if too_verbose:
            environ["OPENCV_FFMPEG_LOGLEVEL"] = "24"
            lowered.append("OPENCV_FFMPEG_LOGLEVEL")
    if cv2.utils.logging.getLogLevel() > cv2.utils.logging.LOG_LEVEL_WARNING:
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_WARNING)
        lowered.append("OPENCV_LOG_LEVEL")
    if lowered:
        log.warning(
            "%s lowered to warnings: FFmpeg's and OpenCV's debug logs show camera passwords",
            ", ".join(lowered),
        )


def _open_capture(
    factory: Callable[..., Any], target: str | int, api: int, params: Sequence[int], options: str | None
) -> Any:
    with CAPTURE_OPTIONS.applied(options):
        return factory(target, api, list(params)) if params else factory(target, api)


# ---------------------------------------------------------------------------------------------------


class VideoFileSource:
    def __init__(
        self,
        path: Path,
        loop: bool,
        key: str,
        profile_file: Path,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = path
        self.loop = loop
        self.key = key
        self.profile_file = profile_file
        self.description = f"video {redact(str(path))}"
        self._capture: cv2.VideoCapture | None = None
        self._first: np.ndarray | None = None
        self._clock = clock
        self._last_frame: float | None = None
        self._ended = False

    def open(self) -> None:
        if not self.path.is_file():
            raise SourceError(
                f"video file {redact(str(self.path))} does not exist",
                file=self.profile_file,
                key=self.key,
                fix="mount the file into the client or point CLIENT_INPUT at an existing one",
            )
        capture = self._reopen()
        ok, frame = capture.read() if capture.isOpened() else (False, None)
        if not ok:
            capture.release()
            raise SourceError(
                f"video file {redact(str(self.path))} cannot be decoded", file=self.profile_file, key=self.key
            )
        self._capture = capture
        self._first = frame

    def _reopen(self) -> cv2.VideoCapture:
        return _open_capture(cv2.VideoCapture, str(self.path), cv2.CAP_ANY, (), None)

    def read(self, timeout: float) -> np.ndarray | None:
        frame = self._next()
        self._last_frame = self._clock()
        return frame

    def _next(self) -> np.ndarray:
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
            self._ended = True
            raise EndOfStream
        # Rewinding is not reliable for every container; reopening is.
        capture.release()
        capture = self._reopen()
        self._capture = capture
        ok, frame = capture.read()
        if not ok:
            log.warning("%s: cannot read after rewinding; stream ends", self.description)
            self._ended = True
            raise EndOfStream
        return frame

    def close(self) -> None:
        if self._capture is not None:
            self._capture.release()
            self._capture = None
        self._ended = True

    def status(self) -> SourceStatus:
        return _file_status(str(self.path), self._ended, self._last_frame, self._clock)


class ImageFolderSource:
    def __init__(
        self,
        path: Path,
        pattern: str,
        loop: bool,
        key: str,
        profile_file: Path,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = path
        self.pattern = pattern
        self.loop = loop
        self.key = key
        self.profile_file = profile_file
        self.description = f"images {redact(f'{path}/{pattern}')}"
        self._files: list[Path] = []
        self._next = 0
        self._clock = clock
        self._last_frame: float | None = None
        self._ended = False

    def open(self) -> None:
        if not self.path.is_dir():
            raise SourceError(
                f"image folder {redact(str(self.path))} does not exist", file=self.profile_file, key=self.key
            )
        self._files = sorted(
            p
            for p in self.path.iterdir()
            if p.suffix.lower() in IMAGE_SUFFIXES and fnmatch.fnmatch(p.name, self.pattern) and p.is_file()
        )
        if not self._files:
            raise SourceError(
                f"image folder {redact(str(self.path))} holds no images matching {redact(self.pattern)!r} "
                f"({', '.join(sorted(IMAGE_SUFFIXES))})",
                file=self.profile_file,
                key=self.key,
            )
        self._next = 0

    def read(self, timeout: float) -> np.ndarray | None:
        for _ in range(len(self._files)):
            if self._next >= len(self._files):
                if not self.loop:
                    break
                self._next = 0
            path = self._files[self._next]
            self._next += 1
            frame = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if frame is not None:
                self._last_frame = self._clock()
                return frame
            log.warning("%s: cannot decode %s; skipped", self.description, redact(path.name))
        self._ended = True
        raise EndOfStream

    def close(self) -> None:
        self._files = []
        self._ended = True

    def status(self) -> SourceStatus:
        return _file_status(f"{self.path}/{self.pattern}", self._ended, self._last_frame, self._clock)


def _file_status(
    name: str, ended: bool, last_frame: float | None, clock: Callable[[], float]
) -> SourceStatus:
    age = None if last_frame is None else max(0.0, clock() - last_frame)
    return SourceStatus(redact(name), ENDED if ended else READING, last_frame_age_s=age)


class LiveSource:
    """A camera (RTSP, HTTP(S), V4L2 device): a reader thread keeps the newest frame, tells stalls
    from drops and reopens with backoff.

    Counters (each an event, not an attempt): `drops` and `stalls` count the times a stream that was
    delivering frames went away; the failed reopens that follow are not counted again. `reconnects`
    counts the times frames came back after that. A camera that never delivered a frame counts
    none of them: its state is `connecting` until its first frame, or `reconnecting` (and `error`
    says why) once an attempt failed.

    The reader survives anything an open, a read or a probe raises (a host name FFmpeg or the probe
    cannot encode, a cv2.error): each is logged once (masked), shown as `error`, and the camera is
    reopened with backoff like after a drop."""

    def __init__(
        self,
        description: str,
        target: str | int,
        api: int,
        backoff: Backoff,
        properties: dict[int, float] | None = None,
        *,
        name: str | None = None,
        params: Sequence[int] = (),
        ffmpeg_options: str | None = None,
        stall_timeout_s: float = DEVICE_STALL_TIMEOUT_S,
        open_timeout_s: float | None = None,
        probe: Callable[[], str] | None = None,
        capture_factory: Callable[..., Any] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.description = description
        self.name = name if name is not None else description
        self._target = target
        self._api = api
        self._backoff = backoff
        self._properties = properties or {}
        self._params = tuple(params)
        self._ffmpeg_options = ffmpeg_options
        self.stall_timeout_s = stall_timeout_s
        self.open_timeout_s = open_timeout_s
        self._probe = probe
        self._factory = capture_factory or cv2.VideoCapture
        self._clock = clock
        self._cond = threading.Condition()
        self._frame: np.ndarray | None = None
        self._sequence = 0
        self._delivered = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # state, under self._cond
        self.reconnects = 0
        self.stalls = 0
        self.drops = 0
        self._connected = False
        self._silent = False  # the outage is a silent camera: a stall, then opens nobody answers
        self._closed = False
        self._opened_at: float | None = None  # when the current capture opened
        self._last_frame: float | None = None  # when the newest frame arrived (any capture)
        self._session_frames = 0
        self._healthy = False  # frames arrived since the last counted drop or stall
        self._ever = False  # a frame ever arrived
        self._error: str | None = None
        self._attempts = 0  # failed opens in a row
        self._secrets = _secrets_of(target)  # forms of the URL's password, to scrub from exceptions

    # -- the consumer side ---------------------------------------------------------------------
    def open(self) -> None:
        """Start the reader; it opens the camera (a camera that cannot be reached is retried)."""
        self._thread = threading.Thread(target=self._run, name=f"reader {self.name}", daemon=True)
        self._thread.start()

    def read(self, timeout: float) -> np.ndarray | None:
        with self._cond:
            if not self._cond.wait_for(lambda: self._sequence > self._delivered, timeout):
                return None
            self._delivered = self._sequence
            return self._frame

    def close(self) -> None:
        self._stop.set()
        with self._cond:
            self._closed = True
        if self._thread is not None:
            self._thread.join(timeout=5)

    def status(self) -> SourceStatus:
        with self._cond:
            now = self._clock()
            age = None if self._last_frame is None else max(0.0, now - self._last_frame)
            if self._connected:
                # a frame of this capture, else its opening, is the last sign of life
                since = self._last_frame if self._session_frames else self._opened_at
                silent = since is not None and now - since > self.stall_timeout_s
            else:
                silent = self._silent
            if self._closed:
                state = ENDED
            elif silent:
                state = STALLED
            elif not self._ever and self._error is None:
                state = CONNECTING
            else:
                state = READING if self._connected else RECONNECTING
            error = self._error
            if state == STALLED and error is None:
                error = f"no frame for more than {self.stall_timeout_s:g} s"
            if state in (READING, CONNECTING):
                error = None
            return SourceStatus(self.name, state, self.reconnects, self.stalls, self.drops, age, error)

    # -- the reader thread ---------------------------------------------------------------------
    def _run(self) -> None:
        capture = None
        first = True
        try:
            while not self._stop.is_set():
                try:
                    if capture is None:
                        if not first and self._stop.wait(self._backoff.next_delay()):
                            break
                        first = False
                        capture = self._try_open()
                        continue
                    started = self._clock()
                    ok, frame = capture.read()
                    now = self._clock()
                    read_s = now - started
                    # A read that took the read timeout is a stall even when it returns a frame: after
                    # the timeout OpenCV drains the decoder's delayed frames, one per timeout, so
                    # waiting for the read to fail would take several stall_timeout_s.
                    if ok and frame is not None and read_s < STALL_FRACTION * self.stall_timeout_s:
                        self._frame_arrived(frame, now)
                        continue
                    _release(capture)
                    capture = None
                    self._read_failed(read_s)
                except Exception as exc:  # never let the reader die: the stream would look stuck
                    first = False
                    _release(capture)
                    capture = None
                    self._unexpected(exc)
        finally:
            _release(capture)
            with self._cond:
                self._connected = False

    def _try_open(self) -> Any:
        started = self._clock()
        capture = _open_capture(self._factory, self._target, self._api, self._params, self._ffmpeg_options)
        try:
            for prop, value in self._properties.items():
                capture.set(prop, value)
            opened = capture.isOpened()
        except BaseException:
            _release(capture)
            raise
        if opened:
            with self._cond:
                self._connected = True
                self._opened_at = self._clock()
                self._session_frames = 0
                attempts, self._attempts = self._attempts, 0
                if not self._ever:
                    self._error = None  # connecting again: the first frame is on the way
            if attempts or self._ever:
                log.info("%s: opened", self.description)
            return capture
        _release(capture)
        elapsed = self._clock() - started
        timeout = self.open_timeout_s
        timed_out = timeout is not None and elapsed >= OPEN_TIMEOUT_FRACTION * timeout
        if timed_out:
            reason = f"no answer within open_timeout_s ({timeout:g} s)"
        elif self._probe is not None:
            reason = self._probe()
        else:
            reason = "cannot be opened"
        with self._cond:
            # a stalled camera that still says nothing stays stalled; one that refuses or fails is gone
            self._silent = self._silent and timed_out
            self._attempts += 1
            attempts = self._attempts
            changed = reason != self._error
            self._error = reason
        if changed or attempts % REPEAT_EVERY == 0:
            log.warning(
                "%s: %s; retrying with backoff (attempt %d, up to every %g s)",
                self.description,
                reason,
                attempts,
                self._backoff.maximum,
            )
        return None

    def _frame_arrived(self, frame: np.ndarray, now: float) -> None:
        with self._cond:
            came_back = self._ever and not self._healthy
            if came_back:
                self.reconnects += 1
            self._ever = True
            self._healthy = True
            self._silent = False
            self._error = None
            self._frame = frame
            self._sequence += 1
            self._session_frames += 1
            self._last_frame = now
            self._cond.notify_all()
        if came_back:
            log.warning("%s: frames resumed (reconnect %d)", self.description, self.reconnects)
        self._backoff.reset()

    def _read_failed(self, read_s: float) -> None:
        stalled = read_s >= STALL_FRACTION * self.stall_timeout_s
        with self._cond:
            self._connected = False
            self._silent = stalled
            counted = self._healthy
            if counted:
                self._healthy = False
                if stalled:
                    self.stalls += 1
                else:
                    self.drops += 1
            if stalled:
                self._error = f"stalled: no frame for {read_s:.1f} s while connected"
            else:
                self._error = (
                    f"dropped: the stream ended or the connection closed (read failed after {read_s:.1f} s)"
                )
        if counted:
            log.warning("%s: %s; reopening", self.description, self._error)
        else:
            log.info("%s: %s before a frame arrived; reopening", self.description, self._error)

    def _unexpected(self, exc: Exception) -> None:
        """Whatever an open, a read or a probe raised: shown as the error (masked), logged once (and
        again only when it changes), counted as a drop when frames were arriving; then the reader
        reopens with backoff."""
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        detail = self._scrub(lines[0])[:200] if lines else ""
        kind = type(exc)
        name = (
            kind.__qualname__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"
        )
        reason = f"unexpected {name}" + (f": {detail}" if detail else "")
        frames = traceback.extract_tb(exc.__traceback__)
        where = f" (at {Path(frames[-1].filename).name}:{frames[-1].lineno})" if frames else ""
        with self._cond:
            self._connected = False
            self._silent = False
            counted = self._healthy
            if counted:
                self._healthy = False
                self.drops += 1
            changed = reason != self._error
            self._error = reason
        if changed:
            log.warning("%s: %s%s; reopening with backoff", self.description, reason, where)

    def _scrub(self, text: str) -> str:
        """Text from outside the client (an exception's message) without this source's password, in
        any of its forms, nor anything that looks like credentials; printable characters only."""
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return "".join(c for c in redact_text(text) if c.isprintable())


def _secrets_of(target: str | int) -> list[str]:
    """The forms a URL's password may take in a message: as typed (maybe percent-encoded) and
    decoded; too short a one would mask ordinary words and is left to the URL masking."""
    if not isinstance(target, str):
        return []
    found = endpoint(target)
    userinfo = target.partition("://")[2].rpartition("@")[0]
    raw = userinfo.partition(":")[2]
    forms = {raw, found.password if found is not None and found.password else ""}
    return sorted((f for f in forms if len(f) >= 4), key=len, reverse=True)


def _release(capture: Any) -> None:
    if capture is None:
        return
    try:
        capture.release()
    except Exception as exc:  # a capture that cannot even be released is dropped all the same
        log.debug("releasing a capture failed: %s", type(exc).__name__)


def describe_input(source: InputSource, loaded: LoadedProfile) -> str:
    """One input as a person reads it (a camera's URL masked): `rtsp rtsp://camera-1:8554/aisle3`."""
    return _describe(source, loaded, None)


def _describe(source: InputSource, loaded: LoadedProfile, url: str | None) -> str:
    if isinstance(source, VideoInput):
        return f"video {redact(str(loaded.resolve_path(source.path)))}"
    if isinstance(source, ImagesInput):
        return f"images {redact(f'{loaded.resolve_path(source.path)}/{source.pattern}')}"
    if isinstance(source, DeviceInput):
        return f"device {source.path}"
    text = f"{source.type} {redact_url(url or source.url)}"
    if isinstance(source, RtspInput) and source.transport != "tcp":
        text += f" ({source.transport})"
    return text


def make_source(
    source: InputSource,
    index: int,
    loaded: LoadedProfile,
    credentials: CameraCredentials | None = None,
) -> FrameSource:
    """Build (not open) the source of `inputs[index]`; camera credentials from `credentials` go into
    the URL OpenCV opens, never into the description."""
    key = f"inputs[{index}]"
    resilience = loaded.profile.resilience
    if isinstance(source, VideoInput):
        return VideoFileSource(loaded.resolve_path(source.path), source.loop, f"{key}.path", loaded.file)
    if isinstance(source, ImagesInput):
        return ImageFolderSource(
            loaded.resolve_path(source.path), source.pattern, source.loop, f"{key}.path", loaded.file
        )
    backoff = Backoff(resilience.backoff_initial_s, resilience.reopen_backoff_max_s)
    if isinstance(source, RtspInput | HttpInput):
        url = source.url
        if credentials is not None:
            url, entry = credentials.apply(url)
            if entry is not None:
                log.info("%s: credentials of user %r from %s", key, entry.username, credentials.file)
        transport = source.transport if isinstance(source, RtspInput) else None
        probe_timeout = min(PROBE_TIMEOUT_S, source.open_timeout_s)
        return LiveSource(
            _describe(source, loaded, url),
            url,
            cv2.CAP_FFMPEG,
            backoff,
            name=redact_url(url),
            params=(
                cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
                _milliseconds(source.open_timeout_s),
                cv2.CAP_PROP_READ_TIMEOUT_MSEC,
                _milliseconds(source.stall_timeout_s),
            ),
            ffmpeg_options=f"rtsp_transport;{transport}" if transport else None,
            stall_timeout_s=source.stall_timeout_s,
            open_timeout_s=source.open_timeout_s,
            probe=lambda: diagnose(url, probe_timeout, transport),
        )
    assert isinstance(source, DeviceInput)
    if not Path(source.path).exists():
        raise SourceError(
            f"video device {source.path} does not exist",
            file=loaded.file,
            key=f"{key}.path",
            fix="connect the camera before the client starts (once started, a device that goes away is "
            "reopened with backoff), or change the input",
        )
    properties: dict[int, float] = {}
    if source.width:
        properties[cv2.CAP_PROP_FRAME_WIDTH] = source.width
    if source.height:
        properties[cv2.CAP_PROP_FRAME_HEIGHT] = source.height
    if source.fps:
        properties[cv2.CAP_PROP_FPS] = source.fps
    device = int(source.path.removeprefix("/dev/video"))
    return LiveSource(
        f"device {source.path}",
        device,
        cv2.CAP_V4L2,
        backoff,
        properties,
        name=source.path,
        probe=lambda: device_problem(source.path),
    )


def device_problem(path: str) -> str:
    """Why a video device cannot be opened, as far as the client can tell."""
    if not Path(path).exists():
        return f"{path} does not exist (unplugged?); reopened when it is back"
    if not os.access(path, os.R_OK | os.W_OK):
        return f"no read and write permission on {path} (the client's user needs the device's group)"
    return f"{path} cannot be opened (in use by another program, or not a capture device)"


def _milliseconds(seconds: float) -> int:
    return max(1, round(seconds * 1000))
