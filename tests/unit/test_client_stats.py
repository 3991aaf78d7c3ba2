"""Stats windows (FPS, p50/p95) with an injected clock; backoff; the server gate."""

from __future__ import annotations

import random

import pytest

from client.backoff import Backoff
from client.health import Admission, ServerGate
from client.sources import SourceStatus
from client.stats import Stats


class FakeClock:
    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def test_fps_and_percentiles_over_the_window():
    clock = FakeClock()
    stats = Stats(window_s=10, clock=clock, wall=lambda: 1_700_000_000.0)
    # 20 s at 5 results per second; latencies cycle 10..50 ms
    for i in range(100):
        clock.advance(0.2)
        stats.result((10 + 10 * (i % 5)) / 1000)
    line = stats.snapshot()
    assert line["fps"] == pytest.approx(5.0, abs=0.11)  # only the last 10 s count
    assert line["window_frames"] in (49, 50)
    assert line["latency_p50_ms"] == pytest.approx(30.0)
    assert line["latency_p95_ms"] == pytest.approx(50.0)
    assert line["frames"] == 100
    assert line["ts"] == 1_700_000_000.0


def test_window_forgets_old_results_and_reports_zero_fps():
    clock = FakeClock()
    stats = Stats(window_s=5, clock=clock)
    clock.advance(1)
    stats.result(0.1)
    clock.advance(6)
    line = stats.snapshot()
    assert line["fps"] == 0.0
    assert line["latency_p50_ms"] is None and line["latency_p95_ms"] is None
    assert line["frames"] == 1


def test_fps_before_the_window_is_full_uses_elapsed_time():
    clock = FakeClock()
    stats = Stats(window_s=10, clock=clock)
    for _ in range(4):
        clock.advance(0.5)
        stats.result(0.01)
    assert stats.snapshot()["fps"] == pytest.approx(2.0)  # 4 results in 2 s


def test_counters_for_dropped_errors_and_in_flight():
    stats = Stats(window_s=10, clock=FakeClock())
    stats.request_started()
    stats.request_started()
    stats.request_finished()
    stats.drop(error=True)
    stats.drop(error=False)
    line = stats.snapshot()
    assert (line["in_flight"], line["dropped"], line["errors"]) == (1, 2, 1)
    assert set(line) >= {
        "fps",
        "latency_p50_ms",
        "latency_p95_ms",
        "in_flight",
        "dropped",
        "errors",
        "frames",
        "ts",
    }


def test_source_counters_per_stream_and_in_total():
    stats = Stats(window_s=10, clock=FakeClock())
    line = stats.snapshot(
        [
            SourceStatus("rtsp://op:***@cam-1:8554/aisle3", "reading", 2, 1, 1, 0.0666666, None),
            SourceStatus("http://cam-2/video.mjpg", "reconnecting", 0, 0, 3, 12.3456, "refused"),
            SourceStatus("/media/sample.mp4", "ended"),
        ]
    )
    assert (line["reconnects"], line["stalls"], line["drops"]) == (2, 1, 4)
    assert line["sources"] == [
        {
            "stream": 0,
            "input": "rtsp://op:***@cam-1:8554/aisle3",
            "state": "reading",
            "reconnects": 2,
            "stalls": 1,
            "drops": 1,
            "last_frame_age_s": 0.07,
            "error": None,
        },
        {
            "stream": 1,
            "input": "http://cam-2/video.mjpg",
            "state": "reconnecting",
            "reconnects": 0,
            "stalls": 0,
            "drops": 3,
            "last_frame_age_s": 12.35,
            "error": "refused",
        },
        {
            "stream": 2,
            "input": "/media/sample.mp4",
            "state": "ended",
            "reconnects": 0,
            "stalls": 0,
            "drops": 0,
            "last_frame_age_s": None,
            "error": None,
        },
    ]
    # without sources (a caller that has none): the keys are there, zero
    bare = Stats(window_s=10, clock=FakeClock()).snapshot()
    assert (bare["reconnects"], bare["stalls"], bare["drops"], bare["sources"]) == (0, 0, 0, [])


def test_backoff_grows_to_the_maximum_and_resets():
    backoff = Backoff(0.5, 3.0, jitter=0)
    assert [backoff.next_delay() for _ in range(5)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    backoff.reset()
    assert backoff.next_delay() == 0.5


def test_backoff_jitter_stays_within_bounds():
    backoff = Backoff(1.0, 1.0, jitter=0.1, rng=random.Random(7))
    delays = [backoff.next_delay() for _ in range(50)]
    assert all(0.9 <= d <= 1.0 for d in delays) and len(set(delays)) > 1


def test_gate_drops_while_down_probes_after_backoff_and_reopens():
    clock = FakeClock()
    gate = ServerGate(Backoff(1.0, 4.0, jitter=0), clock=clock)
    assert gate.admit() is Admission.SEND
    gate.failure(Admission.SEND, ConnectionError("refused"))
    assert not gate.up and gate.outages == 1
    # other requests already in flight fail too: no extra backoff growth
    gate.failure(Admission.SEND, ConnectionError("refused"))
    assert gate.admit() is None
    clock.advance(1.0)
    assert gate.admit() is Admission.PROBE
    assert gate.admit() is None  # one probe at a time
    gate.failure(Admission.PROBE, ConnectionError("refused"))
    clock.advance(1.9)
    assert gate.admit() is None  # the second delay is 2 s
    clock.advance(0.1)
    probe = gate.admit()
    assert probe is Admission.PROBE
    gate.success(probe)
    assert gate.up and gate.admit() is Admission.SEND
    # a new outage starts again from the initial delay
    gate.failure(Admission.SEND, TimeoutError("deadline"))
    clock.advance(1.0)
    assert gate.admit() is Admission.PROBE and gate.outages == 2


def test_gate_calls_on_probe_before_each_probe():
    clock = FakeClock()
    probes = []
    gate = ServerGate(Backoff(1.0, 1.0, jitter=0), clock=clock, on_probe=lambda: probes.append(clock.now))
    gate.failure(Admission.SEND, ConnectionError("refused"))
    assert gate.admit() is None and probes == []
    clock.advance(1.0)
    assert gate.admit() is Admission.PROBE
    assert probes == [clock.now]


def test_fps_per_stream():
    clock = FakeClock()
    stats = Stats(window_s=10, clock=clock, streams=3)
    for _ in range(20):
        clock.advance(0.5)
        stats.result(0.01, stream=0)
        stats.result(0.01, stream=2)
        stats.result(0.01, stream=2)
    line = stats.snapshot()
    assert line["stream_fps"] == [pytest.approx(2.0, abs=0.11), 0.0, pytest.approx(4.0, abs=0.21)]
    assert line["fps"] == pytest.approx(6.0, abs=0.31)
