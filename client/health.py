"""Whether requests may go to the server: up, or down with one probe allowed after each backoff."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from enum import Enum

from .backoff import Backoff

log = logging.getLogger("client.server")

_REPORT_EVERY_S = 10.0  # how often a long outage is logged again


class Admission(Enum):
    SEND = "send"
    PROBE = "probe"


class ServerGate:
    """A circuit breaker shared by all streams. While the server is down, frames are dropped without
    a request; after each backoff delay one frame goes out as a probe, and its success reopens the gate."""

    def __init__(
        self,
        backoff: Backoff,
        clock: Callable[[], float] = time.monotonic,
        on_probe: Callable[[], None] | None = None,
    ) -> None:
        self._backoff = backoff
        self._on_probe = on_probe
        self._clock = clock
        self._lock = threading.Lock()
        self._up = True
        self._probe_out = False
        self._next_probe = 0.0
        self._down_since = 0.0
        self._last_report = 0.0
        self.outages = 0

    @property
    def up(self) -> bool:
        return self._up

    def admit(self) -> Admission | None:
        with self._lock:
            if self._up:
                return Admission.SEND
            if not self._probe_out and self._clock() >= self._next_probe:
                self._probe_out = True
                if self._on_probe is not None:
                    self._on_probe()  # e.g. a fresh channel for the probe
                return Admission.PROBE
            return None

    def success(self, admission: Admission) -> None:
        with self._lock:
            if admission is Admission.PROBE:
                self._probe_out = False
            if not self._up:
                self._up = True
                self._backoff.reset()
                log.warning("server answers again after %.1f s; resuming", self._clock() - self._down_since)

    def failure(self, admission: Admission, error: BaseException) -> None:
        with self._lock:
            now = self._clock()
            if self._up:
                self._up = False
                self.outages += 1
                self._down_since = now
                self._last_report = now
                delay = self._backoff.next_delay()
                self._next_probe = now + delay
                log.warning("server unavailable (%s); dropping frames, retry in %.1f s", _short(error), delay)
            elif admission is Admission.PROBE:
                self._probe_out = False
                delay = self._backoff.next_delay()
                self._next_probe = now + delay
                if now - self._last_report >= _REPORT_EVERY_S:
                    self._last_report = now
                    log.info(
                        "server still unavailable after %.0f s (%s); retrying every %.1f s or less",
                        now - self._down_since,
                        _short(error),
                        self._backoff.maximum,
                    )


def _short(error: BaseException) -> str:
    text = str(error).replace("Error occurred during handling the request: ", "")
    return f"{type(error).__name__}: {text[:160]}"
