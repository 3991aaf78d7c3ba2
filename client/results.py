"""Result files under OVMS_RESULTS_DIR: JSON lines appended (never truncated) and JPEG snapshots."""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from .decoders import Detection
from .errors import ClientError

log = logging.getLogger("client.results")


class JsonLines:
    """One JSON object per line, appended with line buffering; safe to share between threads."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._file = path.open("a", buffering=1, encoding="utf-8")
        except OSError as exc:
            raise ClientError(
                f"cannot append to {path}: {exc.strerror}",
                file="environment",
                key="OVMS_RESULTS_DIR",
                fix="mount a directory the client's user may write to",
            ) from exc
        self._lock = threading.Lock()

    def write(self, record: dict[str, Any]) -> None:
        line = json.dumps(record, separators=(",", ":"), ensure_ascii=False) + "\n"
        with self._lock:
            self._file.write(line)

    def close(self) -> None:
        with self._lock:
            if not self._file.closed:
                self._file.flush()
                os.fsync(self._file.fileno())
                self._file.close()


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
