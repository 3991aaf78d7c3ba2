"""Minimal Prometheus counters with the real server's metric names."""

from __future__ import annotations

import threading
from collections import Counter


class Metrics:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._success: Counter[tuple[str, int, str, str]] = Counter()
        self._fail: Counter[tuple[str, int, str, str]] = Counter()

    def record(self, name: str, version: int, interface: str, method: str, ok: bool) -> None:
        with self._lock:
            (self._success if ok else self._fail)[(name, version, interface, method)] += 1

    def render(self) -> str:
        lines = []
        with self._lock:
            for metric, counter in (
                ("ovms_requests_success", self._success),
                ("ovms_requests_fail", self._fail),
            ):
                outcome = "successful" if counter is self._success else "failed"
                lines.append(f"# HELP {metric} Number of {outcome} requests to a model.")
                lines.append(f"# TYPE {metric} counter")
                for (name, version, interface, method), count in sorted(counter.items()):
                    api = "KServe" if method.startswith("Model") else "TensorFlowServing"
                    labels = f'api="{api}",interface="{interface}",method="{method}",'
                    labels += f'name="{name}",version="{version}"'
                    lines.append(f"{metric}{{{labels}}} {count}")
        return "\n".join(lines) + "\n"
