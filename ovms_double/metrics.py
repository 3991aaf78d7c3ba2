"""Prometheus metrics with the real server's names, types, HELP texts, labels, buckets and text layout.

From model_server v2026.3: src/model_metric_reporter.cpp (families, labels, buckets),
src/metrics/metric_config.* (default and optional sets, `--metrics_list` checks) and prometheus-cpp
v1.0.1's text serializer (counters, then gauges, then histograms; labels in alphabetical order; each
histogram series as `_count`, `_sum`, then its cumulative buckets). Series of a model version exist
from the moment the version is created, at 0. The MediaPipe families are accepted in
`--metrics_list` (the double serves no MediaPipe graph, so they never have a series).
"""

from __future__ import annotations

import bisect
import math
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field

COUNTER, GAUGE, HISTOGRAM = "counter", "gauge", "histogram"

# name -> (type, HELP), in the order the real server registers them for models
MODEL_FAMILIES: dict[str, tuple[str, str]] = {
    "ovms_requests_success": (COUNTER, "Number of successful requests to a model or a DAG."),
    "ovms_requests_fail": (COUNTER, "Number of failed requests to a model or a DAG."),
    "ovms_request_time_us": (HISTOGRAM, "Processing time of requests to a model or a DAG."),
    "ovms_inference_time_us": (HISTOGRAM, "Inference execution time in the OpenVINO backend."),
    "ovms_wait_for_infer_req_time_us": (HISTOGRAM, "Request waiting time in the scheduling queue."),
    "ovms_streams": (GAUGE, "Number of OpenVINO execution streams."),
    "ovms_infer_req_queue_size": (GAUGE, "Inference request queue size (nireq)."),
    "ovms_infer_req_active": (
        GAUGE,
        "Number of currently consumed inference request from the processing queue.",
    ),
    "ovms_current_requests": (GAUGE, "Number of inference requests currently in process."),
}
MEDIAPIPE_FAMILIES = (
    "ovms_current_graphs",
    "ovms_requests_accepted",
    "ovms_requests_rejected",
    "ovms_graph_error",
    "ovms_graph_processing_time_us",
    "ovms_responses",
)
# What --metrics_enable turns on without --metrics_list (metric_config.hpp)
DEFAULT_SET = (
    "ovms_current_requests",
    "ovms_requests_success",
    "ovms_requests_fail",
    "ovms_request_time_us",
    "ovms_streams",
    "ovms_inference_time_us",
    "ovms_wait_for_infer_req_time_us",
    *MEDIAPIPE_FAMILIES,
)
OPTIONAL_SET = ("ovms_infer_req_queue_size", "ovms_infer_req_active")

# floor(10 * 1.8^i), i = 0..32 (NUMBER_OF_BUCKETS, BUCKET_MULTIPLIER, BUCKET_POWER_BASE)
BUCKETS: tuple[int, ...] = tuple(math.floor(10 * 1.8**i) for i in range(33))

INTERFACES = ("gRPC", "REST")
API = "KServe"
# Releases before 2026.3 also count their TensorFlow Serving API (removed with it)
TFS_API = "TensorFlowServing"
TFS_METHODS = ("Predict", "GetModelMetadata", "GetModelStatus")


class MetricsListError(ValueError):
    """An entry of --metrics_list the real server refuses ("Invalid name in metrics_list")."""

    def __init__(self, entry: str) -> None:
        self.entry = entry
        super().__init__(f"Metrics family name not supported: {entry}")


def enabled_families(enable: bool, metrics_list: str) -> frozenset[str]:
    """The families a server exposes: none, the default set, or exactly the listed ones.

    As metric_config.cpp: entries are split on ',' and trimmed; an entry that adds nothing to the
    set (unknown, or listed twice) is refused."""
    if not enable:
        return frozenset()
    if not metrics_list.strip():
        return frozenset(DEFAULT_SET)
    chosen: set[str] = set()
    for raw in metrics_list.split(","):
        entry = raw.strip()
        if entry not in DEFAULT_SET + OPTIONAL_SET or entry in chosen:
            raise MetricsListError(entry)
        chosen.add(entry)
    return frozenset(chosen)


def _number(value: float) -> str:
    if float(value).is_integer():
        return str(int(value))
    return f"{value:.16g}"


def _labels(labels: tuple[tuple[str, str], ...], extra: str = "") -> str:
    parts = [f'{key}="{value}"' for key, value in labels]
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}"


@dataclass
class _Histogram:
    counts: list[int] = field(default_factory=lambda: [0] * (len(BUCKETS) + 1))
    total: float = 0.0
    count: int = 0

    def observe(self, value: float) -> None:
        # first bucket whose upper bound is >= value (std::lower_bound in prometheus-cpp)
        self.counts[bisect.bisect_left(BUCKETS, value)] += 1
        self.total += value
        self.count += 1

    def lines(self, name: str, labels: tuple[tuple[str, str], ...]) -> Iterable[str]:
        yield f"{name}_count{_labels(labels)} {self.count}"
        yield f"{name}_sum{_labels(labels)} {_number(self.total)}"
        cumulative = 0
        for bound, count in zip((*BUCKETS, "+Inf"), self.counts, strict=True):
            cumulative += count
            le = f'le="{bound}"'
            yield f"{name}_bucket{_labels(labels, le)} {cumulative}"


class Registry:
    """All series of the server; thread-safe. Families not enabled get no series and are not shown."""

    def __init__(self, enabled: frozenset[str], tfs: bool = False) -> None:
        self.enabled = enabled
        self.tfs = tfs
        self._lock = threading.Lock()
        # family -> labels -> value (float) or _Histogram
        self._series: dict[str, dict[tuple[tuple[str, str], ...], float | _Histogram]] = {}

    def create(self, family: str, labels: dict[str, str]) -> tuple[tuple[str, str], ...] | None:
        """Create a series at 0; None when the family is not enabled."""
        if family not in self.enabled:
            return None
        key = tuple(sorted(labels.items()))
        kind = MODEL_FAMILIES[family][0]
        with self._lock:
            series = self._series.setdefault(family, {})
            series.setdefault(key, _Histogram() if kind == HISTOGRAM else 0.0)
        return key

    def add(self, family: str, key: tuple[tuple[str, str], ...] | None, delta: float) -> None:
        if key is None:
            return
        with self._lock:
            series = self._series[family]
            series[key] = float(series[key]) + delta  # type: ignore[arg-type]

    def set(self, family: str, key: tuple[tuple[str, str], ...] | None, value: float) -> None:
        if key is None:
            return
        with self._lock:
            self._series[family][key] = float(value)

    def observe(self, family: str, key: tuple[tuple[str, str], ...] | None, value: float) -> None:
        if key is None:
            return
        with self._lock:
            histogram = self._series[family][key]
            assert isinstance(histogram, _Histogram)
            histogram.observe(value)

    def render(self) -> str:
        """Prometheus text format as prometheus-cpp's TextSerializer writes it."""
        lines: list[str] = []
        with self._lock:
            for kind in (COUNTER, GAUGE, HISTOGRAM):
                for family, (family_kind, help_text) in MODEL_FAMILIES.items():
                    series = self._series.get(family)
                    if family_kind != kind or not series:
                        continue
                    lines.append(f"# HELP {family} {help_text}")
                    lines.append(f"# TYPE {family} {kind}")
                    for labels, value in series.items():
                        if isinstance(value, _Histogram):
                            lines.extend(value.lines(family, labels))
                        else:
                            lines.append(f"{family}{_labels(labels)} {_number(value)}")
        return "".join(line + "\n" for line in lines)


class ModelReporter:
    """The series of one model version (ModelMetricReporter), created at 0 with the version."""

    def __init__(self, registry: Registry, name: str, version: int) -> None:
        self.registry = registry
        v = str(version)
        self._requests: dict[tuple[str, str, str, bool], tuple[tuple[str, str], ...] | None] = {}
        methods = [(API, m) for m in ("ModelInfer", "ModelMetadata", "ModelReady")]
        if registry.tfs:
            methods += [(TFS_API, m) for m in TFS_METHODS]
        for interface in INTERFACES:
            for api, method in methods:
                labels = {"api": api, "interface": interface, "method": method, "name": name}
                if method != "ModelReady":  # the real server's ModelReady series carry no version
                    labels["version"] = v
                for ok, family in ((True, "ovms_requests_success"), (False, "ovms_requests_fail")):
                    self._requests[(interface, method, family, ok)] = registry.create(family, labels)
        own = {"name": name, "version": v}
        self._request_time = {
            interface: registry.create("ovms_request_time_us", {**own, "interface": interface})
            for interface in INTERFACES
        }
        self._inference = registry.create("ovms_inference_time_us", own)
        self._wait = registry.create("ovms_wait_for_infer_req_time_us", own)
        self._streams = registry.create("ovms_streams", own)
        self._queue = registry.create("ovms_infer_req_queue_size", own)
        self._active = registry.create("ovms_infer_req_active", own)
        self._current = registry.create("ovms_current_requests", own)

    def request(self, interface: str, method: str, ok: bool) -> None:
        family = "ovms_requests_success" if ok else "ovms_requests_fail"
        self.registry.add(family, self._requests[(interface, method, family, ok)], 1)

    def request_time(self, interface: str, microseconds: float) -> None:
        self.registry.observe("ovms_request_time_us", self._request_time[interface], int(microseconds))

    def inference_time(self, microseconds: float) -> None:
        self.registry.observe("ovms_inference_time_us", self._inference, int(microseconds))

    def wait_time(self, microseconds: float) -> None:
        self.registry.observe("ovms_wait_for_infer_req_time_us", self._wait, int(microseconds))

    def loaded(self, streams: int, nireq: int) -> None:
        self.registry.set("ovms_streams", self._streams, streams)
        self.registry.set("ovms_infer_req_queue_size", self._queue, nireq)

    def unloaded(self) -> None:
        self.loaded(0, 0)

    def infer_request_taken(self, delta: int) -> None:
        """+1 when an infer request leaves the queue, -1 when it returns (current requests alike)."""
        self.registry.add("ovms_infer_req_active", self._active, delta)
        self.registry.add("ovms_current_requests", self._current, delta)
