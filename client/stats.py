"""Counters and a sliding window of results: FPS over the window, p50/p95 latency; the sources' state
and counters (reconnects, stalls, drops) per stream and in total."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from .sources import SourceStatus


class Stats:
    def __init__(
        self,
        window_s: float,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        streams: int = 1,
    ) -> None:
        self.window_s = window_s
        self.streams = streams
        self._clock = clock
        self._wall = wall
        self._lock = threading.Lock()
        self._started = clock()
        # (completion time, latency seconds, stream)
        self._results: deque[tuple[float, float, int]] = deque()
        self.frames = 0
        self.dropped = 0
        self.errors = 0
        self.in_flight = 0

    def request_started(self) -> None:
        with self._lock:
            self.in_flight += 1

    def request_finished(self) -> None:
        with self._lock:
            self.in_flight -= 1

    def result(self, latency_s: float, stream: int = 0) -> None:
        with self._lock:
            self.frames += 1
            self._results.append((self._clock(), latency_s, stream))

    def drop(self, error: bool) -> None:
        with self._lock:
            self.dropped += 1
            if error:
                self.errors += 1

    def snapshot(self, sources: Sequence[SourceStatus] = ()) -> dict[str, Any]:
        """The fields of one stats line (the launcher's `status` reads the latest one); `sources` are
        the streams' sources in stream order."""
        with self._lock:
            now = self._clock()
            horizon = now - self.window_s
            while self._results and self._results[0][0] <= horizon:
                self._results.popleft()
            span = min(self.window_s, now - self._started)
            count = len(self._results)
            latencies = np.fromiter((r[1] for r in self._results), dtype=np.float64, count=count)
            stream_ids = np.fromiter((r[2] for r in self._results), dtype=np.int64, count=count)
            per_stream = np.bincount(stream_ids, minlength=self.streams)
            frames, dropped, errors, in_flight = self.frames, self.dropped, self.errors, self.in_flight
        p50 = p95 = None
        if count:
            p50, p95 = (float(v) * 1000.0 for v in np.percentile(latencies, [50, 95]))
        return {
            "ts": round(self._wall(), 3),
            "fps": round(count / span, 2) if span > 0 else 0.0,
            "latency_p50_ms": round(p50, 2) if p50 is not None else None,
            "latency_p95_ms": round(p95, 2) if p95 is not None else None,
            "in_flight": in_flight,
            "dropped": dropped,
            "errors": errors,
            "frames": frames,
            "window_s": self.window_s,
            "window_frames": count,
            "stream_fps": [round(int(n) / span, 2) if span > 0 else 0.0 for n in per_stream],
            **source_fields(sources),
        }


def source_fields(sources: Sequence[SourceStatus]) -> dict[str, Any]:
    """Totals `reconnects`, `stalls`, `drops` and `sources`: one entry per stream."""
    entries = [
        {
            "stream": stream,
            "input": status.input,
            "state": status.state,
            "reconnects": status.reconnects,
            "stalls": status.stalls,
            "drops": status.drops,
            "last_frame_age_s": _rounded(status.last_frame_age_s),
            "error": status.error,
        }
        for stream, status in enumerate(sources)
    ]
    return {
        "reconnects": sum(e["reconnects"] for e in entries),
        "stalls": sum(e["stalls"] for e in entries),
        "drops": sum(e["drops"] for e in entries),
        "sources": entries,
    }


def _rounded(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds, 2)
