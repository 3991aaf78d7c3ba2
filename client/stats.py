"""Counters and a sliding window of results: FPS over the window, p50/p95 latency; the sources' state
and counters (reconnects, stalls, drops) per stream and in total; frames, drops and errors per stream
(the client's metrics read them too, client/metrics.py)."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from .sources import SourceStatus


@dataclass
class StreamCounts:
    """One stream's counters since start: frames with a result, frames without one (`dropped`), and
    of those the ones whose request failed (`errors`)."""

    frames: int = 0
    dropped: int = 0
    errors: int = 0


@dataclass(frozen=True)
class _Window:
    span: float  # seconds the window covers (shorter than window_s just after start)
    latencies: np.ndarray  # of the results in the window, seconds
    stream_fps: list[float]  # results per second over the span, per stream


class Stats:
    def __init__(
        self,
        window_s: float,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        streams: int = 1,
        stages: Sequence[tuple[str, str | None]] = (),
        on_latency: Callable[[str, float], None] | None = None,
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
        # the same counters per stream (the metrics' labels); a stream number past `streams` grows them
        self._stream_counts: list[StreamCounts] = [StreamCounts() for _ in range(streams)]
        # told each successful request's latency (stage, seconds): the metrics' histogram
        self._on_latency = on_latency
        # per stage (name -> model): requests and failures in total, latencies over the window
        self._stage_models = dict(stages)
        self._stage_counts = {name: [0, 0] for name in self._stage_models}
        self._stage_latencies: deque[tuple[float, float, str]] = deque()

    def request_started(self) -> None:
        with self._lock:
            self.in_flight += 1

    def request_finished(self) -> None:
        with self._lock:
            self.in_flight -= 1

    def result(self, latency_s: float, stream: int = 0) -> None:
        with self._lock:
            self.frames += 1
            self._stream(stream).frames += 1
            self._results.append((self._clock(), latency_s, stream))

    def stage_request(self, stage: str, latency_s: float, ok: bool) -> None:
        """One request of a stage (one per frame for the first stage, one per crop for later ones)."""
        with self._lock:
            counts = self._stage_counts.setdefault(stage, [0, 0])
            counts[0] += 1
            if ok:
                self._stage_latencies.append((self._clock(), latency_s, stage))
            else:
                counts[1] += 1
        if ok and self._on_latency is not None:
            self._on_latency(stage, latency_s)

    def drop(self, error: bool, stream: int = 0) -> None:
        """A frame without a result; `error`: its request failed (else it was never sent)."""
        with self._lock:
            self.dropped += 1
            counts = self._stream(stream)
            counts.dropped += 1
            if error:
                self.errors += 1
                counts.errors += 1

    def _stream(self, stream: int) -> StreamCounts:
        """The counters of a stream (under the lock)."""
        while len(self._stream_counts) <= stream:
            self._stream_counts.append(StreamCounts())
        return self._stream_counts[stream]

    def stream_counts(self) -> list[StreamCounts]:
        """A copy of each stream's counters since start, in stream order (the metrics' counters)."""
        with self._lock:
            return [StreamCounts(c.frames, c.dropped, c.errors) for c in self._stream_counts]

    def stream_fps(self) -> list[float]:
        """Each stream's results per second over the window, now (the `stream_fps` of a stats line)."""
        with self._lock:
            return self._window_locked(self._clock()).stream_fps

    def _window_locked(self, now: float) -> _Window:
        """Under the lock: drop the results older than the window, then its span, latencies and each
        stream's rate."""
        horizon = now - self.window_s
        while self._results and self._results[0][0] <= horizon:
            self._results.popleft()
        span = min(self.window_s, now - self._started)
        count = len(self._results)
        latencies = np.fromiter((r[1] for r in self._results), dtype=np.float64, count=count)
        stream_ids = np.fromiter((r[2] for r in self._results), dtype=np.int64, count=count)
        per_stream = np.bincount(stream_ids, minlength=max(self.streams, len(self._stream_counts)))
        rates = [round(int(n) / span, 2) if span > 0 else 0.0 for n in per_stream]
        return _Window(span, latencies, rates)

    def snapshot(self, sources: Sequence[SourceStatus] = ()) -> dict[str, Any]:
        """The fields of one stats line (the launcher's `status` reads the latest one); `sources` are
        the streams' sources in stream order."""
        with self._lock:
            now = self._clock()
            horizon = now - self.window_s
            window = self._window_locked(now)
            span, latencies, count = window.span, window.latencies, len(window.latencies)
            frames, dropped, errors, in_flight = self.frames, self.dropped, self.errors, self.in_flight
            while self._stage_latencies and self._stage_latencies[0][0] <= horizon:
                self._stage_latencies.popleft()
            by_stage: dict[str, list[float]] = {name: [] for name in self._stage_counts}
            for _, latency, stage in self._stage_latencies:
                by_stage.setdefault(stage, []).append(latency)
            counts = {name: tuple(c) for name, c in self._stage_counts.items()}
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
            "stream_fps": window.stream_fps,
            "stages": {
                name: {
                    "model": self._stage_models.get(name),
                    "requests": counts[name][0],
                    "failures": counts[name][1],
                    **_percentiles(by_stage.get(name, [])),
                }
                for name in counts
            },
            **source_fields(sources),
        }


def _percentiles(latencies: list[float]) -> dict[str, float | None]:
    if not latencies:
        return {"latency_p50_ms": None, "latency_p95_ms": None}
    p50, p95 = (float(v) * 1000.0 for v in np.percentile(latencies, [50, 95]))
    return {"latency_p50_ms": round(p50, 2), "latency_p95_ms": round(p95, 2)}


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
