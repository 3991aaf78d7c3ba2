"""The client's Prometheus metrics, served on 0.0.0.0:$OVMS_METRICS_PORT (none when it is unset).

Counters and gauges are read when Prometheus scrapes, from what the stats lines report (client/stats.py:
frames, drops and errors per stream, the window's rate), the sources' status (reconnects) and the
server gate (up or down): one count, shown in both places. The latency histogram is fed by Stats as
each request of a stage succeeds. Each run has its own registry (never prometheus_client's global
one), so a process may hold several (tests)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from .errors import ClientError
from .settings import ENVIRONMENT
from .stats import StreamCounts

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

    from .health import ServerGate
    from .sources import FrameSource
    from .stats import Stats

log = logging.getLogger("client.metrics")

PORT_VARIABLE = "OVMS_METRICS_PORT"
# request latencies from a millisecond (a small model on a near server) to the request timeout
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_STREAM_LABELS = ["profile", "stream"]
# the counters of each stream, by name (without _total): their help
_STREAM_COUNTERS = {
    "ovms_client_frames": "Frames with a result since the client started",
    "ovms_client_errors": "Frames whose request failed since the client started",
    "ovms_client_dropped_frames": (
        "Frames without a result since the client started (server unavailable or request failed)"
    ),
    "ovms_client_reconnects": "Times a stream's source delivered frames again after an outage",
}


class ClientMetrics:
    """The metrics of one client run. `attach` hands over the run's stats, sources and server gate as
    they come into being; until then their series read 0 (the server is down until it answers)."""

    def __init__(
        self,
        profile: str,
        streams: int,
        target_fps: float,
        stages: Sequence[tuple[str, str | None]],
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.profile = profile
        self.streams = streams
        self.target_fps = target_fps
        self.registry = registry if registry is not None else CollectorRegistry()
        self._stage_models = {name: model or "" for name, model in stages}
        self._latency = Histogram(
            "ovms_client_inference_latency_seconds",
            "Round trip of each successful request of a stage (a stage run in the client: model empty)",
            ["profile", "stage", "model"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        for name, model in self._stage_models.items():
            self._latency.labels(profile, name, model)
        self._stats: Stats | None = None
        self._sources: Sequence[FrameSource] = ()
        self._gate: ServerGate | None = None
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None
        self.registry.register(_RunCollector(self))

    def attach(
        self,
        *,
        stats: Stats | None = None,
        sources: Sequence[FrameSource] | None = None,
        gate: ServerGate | None = None,
    ) -> None:
        if stats is not None:
            self._stats = stats
        if sources is not None:
            self._sources = tuple(sources)
        if gate is not None:
            self._gate = gate

    def observe_latency(self, stage: str, seconds: float) -> None:
        """Stats' `on_latency`: one successful request of `stage`."""
        self._latency.labels(self.profile, stage, self._stage_models.get(stage, "")).observe(seconds)

    def serve(self, port: int, address: str = "0.0.0.0") -> None:
        """Serve /metrics on address:port in a daemon thread, until close()."""
        try:
            self._server, self._thread = start_http_server(port, addr=address, registry=self.registry)
        except OSError as exc:
            raise ClientError(
                f"cannot serve the metrics on {address}:{port}: {exc.strerror or exc}",
                file=ENVIRONMENT,
                key=PORT_VARIABLE,
                fix="choose a free port (ovms_client_metrics_port), or leave the variable empty",
            ) from exc
        log.info("metrics on http://%s:%d/metrics", address, port)

    @property
    def port(self) -> int | None:
        """The port served on (the one bound when serve() was given 0), None when not serving."""
        return None if self._server is None else int(self._server.server_port)

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    # -- read at scrape time (the collector) ---------------------------------------------------
    def stream_counts(self) -> list[StreamCounts]:
        counts = self._stats.stream_counts() if self._stats is not None else []
        return counts + [StreamCounts() for _ in range(self.streams - len(counts))]

    def stream_fps(self) -> list[float]:
        rates = self._stats.stream_fps() if self._stats is not None else []
        return rates + [0.0] * (self.streams - len(rates))

    def reconnects(self) -> list[int]:
        found = [source.status().reconnects for source in self._sources]
        return found + [0] * (self.streams - len(found))

    def server_up(self) -> bool:
        return self._gate is not None and self._gate.up


class _RunCollector:
    """The series read at scrape time. A counter never goes down: each is kept at the highest value
    shown so far (what it reads only counts up; this holds whatever a reader does)."""

    def __init__(self, metrics: ClientMetrics) -> None:
        self._metrics = metrics
        self._lock = threading.Lock()
        self._shown: dict[tuple[str, int], float] = {}

    def describe(self) -> list[Metric]:
        """The families without samples: the registry checks their names once, at registration."""
        return [*_counter_families(), *_gauge_families()]

    def collect(self) -> Iterator[Metric]:
        metrics = self._metrics
        profile = metrics.profile
        counts = metrics.stream_counts()
        values = {
            "ovms_client_frames": [c.frames for c in counts],
            "ovms_client_errors": [c.errors for c in counts],
            "ovms_client_dropped_frames": [c.dropped for c in counts],
            "ovms_client_reconnects": metrics.reconnects(),
        }
        for family in _counter_families():
            for stream, value in enumerate(values[family.name]):
                family.add_metric([profile, str(stream)], self._monotonic(family.name, stream, value))
            yield family
        fps, target, server = _gauge_families()
        for stream, rate in enumerate(metrics.stream_fps()):
            fps.add_metric([profile, str(stream)], rate)
            target.add_metric([profile, str(stream)], metrics.target_fps)
        server.add_metric([profile], 1.0 if metrics.server_up() else 0.0)
        yield from (fps, target, server)

    def _monotonic(self, name: str, stream: int, value: float) -> float:
        with self._lock:
            shown = max(self._shown.get((name, stream), 0.0), float(value))
            self._shown[(name, stream)] = shown
            return shown


def _counter_families() -> list[CounterMetricFamily]:
    return [CounterMetricFamily(name, text, labels=_STREAM_LABELS) for name, text in _STREAM_COUNTERS.items()]


def _gauge_families() -> tuple[GaugeMetricFamily, GaugeMetricFamily, GaugeMetricFamily]:
    return (
        GaugeMetricFamily(
            "ovms_client_fps",
            "Results per second over the stats window (outputs.stats_window_s)",
            labels=_STREAM_LABELS,
        ),
        GaugeMetricFamily(
            "ovms_client_target_fps",
            "The profile's target_fps of each stream (0: as fast as possible)",
            labels=_STREAM_LABELS,
        ),
        GaugeMetricFamily(
            "ovms_client_server_up",
            "1 while the model server answers, 0 while it is down",
            labels=["profile"],
        ),
    )
