"""Result files under OVMS_RESULTS_DIR: JSON lines appended (never truncated; rotated by size when the
profile sets a limit) and JPEG snapshots."""

from __future__ import annotations

import errno
import json
import logging
import os
import re
import stat
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

import cv2
import numpy as np

from .decoders import Detection
from .errors import ClientError

log = logging.getLogger("client.results")


class JsonLines:
    """One JSON object per line, appended, each line written whole; safe to share between threads.

    With `rotate_bytes`, the file rotates by size: before a line that would take it past the limit,
    `<file>.1` … `<file>.<keep>` shift up (the oldest is dropped), the file becomes `<file>.1` and a
    new one starts. A record is never cut (a line longer than the limit goes alone into a new file).
    A rotation that fails is logged and the lines go on to the current file: nothing is lost.

    Only regular files are opened, renamed or removed, and symbolic links are never followed. An
    entry of the chain that is not a regular file (a folder named `<file>.2`, a link) ends the chain
    before it (logged once): the rotated files before it are kept and the one just before it dropped;
    when `<file>.1` itself is not a regular file, a full file's records are dropped (logged) and a new
    file starts, so the disk stays bounded."""

    def __init__(self, path: Path, rotate_bytes: int | None = None, keep: int = 4) -> None:
        if rotate_bytes is not None and rotate_bytes < 1:
            raise ValueError(f"rotate_bytes must be at least 1, got {rotate_bytes}")
        if keep < 1:
            raise ValueError(f"keep must be at least 1, got {keep}")
        self.path = path
        self.rotate_bytes = rotate_bytes
        self.keep = keep
        self._lock = threading.Lock()
        self._warned: set[str] = set()  # the entries that broke the chain, logged once each
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._file = self._open()
        except OSError as exc:
            raise ClientError(
                f"cannot append to {path}: {exc.strerror or exc}",
                file="environment",
                key="OVMS_RESULTS_DIR",
                fix="mount a directory the client's user may write to; "
                f"{path.name} in it must be a regular file (not a link, folder or pipe) or absent",
            ) from exc
        self._size = os.fstat(self._file.fileno()).st_size  # a restarted client continues the file
        # after a failed rotation, the next attempt waits until this size (one more limit's worth)
        self._retry_at = 0

    def _open(self) -> BinaryIO:
        """The file for append: created if absent, never through a symbolic link, refused unless it
        is a regular file. A last line torn by a crash (no newline) is ended, so that the next record
        starts a line of its own."""
        flags = os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
        fd = os.open(self.path, flags, 0o666)  # O_NONBLOCK: a pipe never blocks the open
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise OSError(errno.EINVAL, "not a regular file", str(self.path))
            os.set_blocking(fd, True)
            if info.st_size > 0 and os.pread(fd, 1, info.st_size - 1) != b"\n":
                log.warning("%s ends inside a line (a crash while writing?): ending that line", self.path)
                os.write(fd, b"\n")
            return os.fdopen(fd, "ab")
        except BaseException:
            os.close(fd)
            raise

    def write(self, record: dict[str, Any]) -> None:
        data = (json.dumps(record, separators=(",", ":"), ensure_ascii=False) + "\n").encode("utf-8")
        with self._lock:
            if self._full(len(data)) and self._size >= self._retry_at:
                self._rotate()
            self._file.write(data)
            self._file.flush()  # the whole line reaches the file now: readers never wait for it
            self._size += len(data)

    def _full(self, adding: int) -> bool:
        """Whether `adding` more bytes would take a file that holds a line past the limit."""
        limit = self.rotate_bytes
        return limit is not None and self._size > 0 and self._size + adding > limit

    def rotated(self, index: int) -> Path:
        """`<file>.<index>`: 1 the newest rotated file, `keep` the oldest."""
        return self.path.with_name(f"{self.path.name}.{index}")

    def _rotate(self) -> None:
        """Under the lock: shift the rotated files, move the file to `.1`, start a new one. On a
        failure, log it and keep the file that is open (renamed back if need be)."""
        try:
            self._drop_oldest()
            usable = self._usable()
            if usable == 0:
                self._drop_current()
                return
            if usable < self.keep:  # the chain ends before `keep`: its last usable file is dropped
                _remove_regular(self.rotated(usable))
            for index in range(usable - 1, 0, -1):
                _move_regular(self.rotated(index), self.rotated(index + 1))
        except OSError as exc:
            self._failed(exc)
            return
        self._file.flush()
        try:
            _move_regular(self.path, self.rotated(1))
        except OSError as exc:
            self._failed(exc)
            return
        try:
            fresh = self._open()
        except OSError as exc:
            try:  # back to its name: the lines keep going to the file readers look at
                _move_regular(self.rotated(1), self.path)
            except OSError as undo:
                log.error("cannot rename %s back to %s: %s", self.rotated(1), self.path, undo)
            self._failed(exc)
            return
        self._switch(fresh, "closing the rotated %s: %s")

    def _switch(self, fresh: BinaryIO, problem: str) -> None:
        old, self._file, self._size, self._retry_at = self._file, fresh, 0, 0
        try:
            os.fsync(old.fileno())
            old.close()
        except OSError as exc:
            log.warning(problem, self.rotated(1), exc)

    def _usable(self) -> int:
        """How many of `<file>.1` … `<file>.<keep>` the rotation may use: up to the first entry that
        is there but not a regular file (logged once)."""
        for index in range(1, self.keep + 1):
            entry = self.rotated(index)
            kind = _kind(entry)
            if kind is not None and not stat.S_ISREG(kind):
                if index > 1 and entry.name not in self._warned:  # at .1, _drop_current logs each drop
                    self._warned.add(entry.name)
                    log.warning(
                        "%s is not a regular file: rotating %s into the %d file(s) before it; "
                        "remove or rename it to keep %d",
                        entry,
                        self.path,
                        index - 1,
                        self.keep,
                    )
                return index - 1
        return self.keep

    def _drop_current(self) -> None:
        """`<file>.1` is not a regular file: the full file's records are dropped and a new file
        starts, so that the disk stays bounded."""
        log.warning(
            "cannot rotate %s: %s is not a regular file; dropping the %d bytes of records of %s",
            self.path,
            self.rotated(1),
            self._size,
            self.path,
        )
        self._file.flush()
        _remove_regular(self.path)
        try:
            fresh = self._open()
        except OSError as exc:
            # the open file has no name any more: emptied, it holds no more than a limit's worth
            self._file.truncate(0)
            self._size = 0
            self._failed(exc)
            return
        self._switch(fresh, "closing the dropped %s: %s")

    def _drop_oldest(self) -> None:
        """Remove `<file>.<n>` for n >= keep: the oldest is dropped, and those a larger `keep` left.
        Only regular files: anything else of that name is left alone."""
        pattern = re.compile(re.escape(self.path.name) + r"\.([1-9][0-9]{0,5})")
        for entry in self.path.parent.iterdir():
            match = pattern.fullmatch(entry.name)
            if match and int(match.group(1)) >= self.keep:
                _remove_regular(entry)

    def _failed(self, exc: OSError) -> None:
        assert self.rotate_bytes is not None
        self._retry_at = self._size + self.rotate_bytes
        log.warning(
            "cannot rotate %s (%s): writing on to it; next attempt after %d more bytes",
            self.path,
            exc,
            self.rotate_bytes,
        )

    def close(self) -> None:
        with self._lock:
            if not self._file.closed:
                self._file.flush()
                os.fsync(self._file.fileno())
                self._file.close()


def _kind(path: Path) -> int | None:
    """The entry's mode, of itself and never of what a link points to; None when it is absent."""
    try:
        return os.lstat(path).st_mode
    except FileNotFoundError:
        return None


def _remove_regular(path: Path) -> None:
    """Remove `path` if it is a regular file; an absent one or anything else is left alone."""
    kind = _kind(path)
    if kind is not None and stat.S_ISREG(kind):
        path.unlink(missing_ok=True)


def _move_regular(source: Path, target: Path) -> None:
    """Rename the regular file `source` to `target`, replacing only a regular file or nothing. An
    absent source is no error (nothing to shift); a source or target of another kind is."""
    kind = _kind(source)
    if kind is None:
        return
    if not stat.S_ISREG(kind):
        raise OSError(errno.EINVAL, "not a regular file", str(source))
    existing = _kind(target)
    if existing is not None and not stat.S_ISREG(existing):
        raise OSError(errno.EINVAL, "not a regular file", str(target))
    source.replace(target)  # renames the entries themselves: a link is never followed


def annotate(frame: np.ndarray, detections: Sequence[Detection]) -> np.ndarray:
    """A copy of the frame with each box, its label and score, and keypoints drawn."""
    image = frame.copy()
    thickness = max(1, round(min(image.shape[:2]) / 300))
    for det in detections:
        x1, y1, x2, y2 = (round(v) for v in det.box)
        cv2.rectangle(image, (x1, y1), (x2, y2), (0, 220, 0), thickness)
        text = f"{det.label} {det.score:.2f}"
        (w, h), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.5, 1)
        top = max(0, y1 - h - base - 2)
        cv2.rectangle(image, (x1, top), (x1 + w + 2, top + h + base + 2), (0, 220, 0), cv2.FILLED)
        origin = (x1 + 1, top + h + 1)
        cv2.putText(image, text, origin, cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
        for x, y in det.keypoints:
            cv2.circle(image, (round(x), round(y)), thickness + 1, (0, 0, 255), cv2.FILLED)
    return image


class Snapshots:
    """Every `interval_s` per stream, an annotated JPEG; the newest `keep` per stream are kept."""

    def __init__(
        self,
        directory: Path,
        interval_s: float,
        keep: int,
        quality: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.directory = directory
        self.interval_s = interval_s
        self.keep = keep
        self.quality = quality
        self._clock = clock
        self._last: dict[int, float] = {}
        if interval_s > 0:
            directory.mkdir(parents=True, exist_ok=True)

    def due(self, stream: int) -> bool:
        if self.interval_s <= 0:
            return False
        last = self._last.get(stream)
        return last is None or self._clock() - last >= self.interval_s

    def write(
        self, stream: int, frame_index: int, frame: np.ndarray, detections: Sequence[Detection]
    ) -> Path:
        self._last[stream] = self._clock()
        params = [cv2.IMWRITE_JPEG_QUALITY, self.quality]
        ok, jpeg = cv2.imencode(".jpg", annotate(frame, detections), params)
        if not ok:
            raise RuntimeError("JPEG encoding failed")
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%f")[:-3]
        path = self.directory / f"stream{stream}-{stamp}Z-frame{frame_index}.jpg"
        partial = path.with_name(f".{path.name}.partial")
        partial.write_bytes(jpeg.tobytes())
        partial.replace(path)  # readers never see a half-written JPEG
        self._prune(stream)
        return path

    def _prune(self, stream: int) -> None:
        mine = sorted(self.directory.glob(f"stream{stream}-*.jpg"))
        for old in mine[: -self.keep]:
            try:
                old.unlink()
            except OSError as exc:
                log.debug("cannot remove old snapshot %s: %s", old, exc)
