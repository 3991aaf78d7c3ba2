"""One stream: capture -> preprocess -> pipelined requests (bounded window) -> in-order results.

Each stream runs in its own thread. Requests go to a shared thread pool, at most `window` per
stream in flight, so transport and server time overlap the next frames' capture and preprocessing.
Results are taken from the head of the window, which keeps frame order. `sync` mode sends one
request at a time from the stream thread itself, for comparison."""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from concurrent.futures import Executor, Future
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .cascade import Cascade, FrameResults
from .decoders import Decoder, Detection, RawDecoder
from .decoders.base import finite
from .errors import RequestRejected
from .health import Admission, ServerGate
from .preprocess import Payload, Preprocessor
from .results import JsonLines, Snapshots
from .sources import EndOfStream, FrameSource
from .stats import Stats

log = logging.getLogger("client.pipeline")

Predict = Callable[[Payload], Mapping[str, np.ndarray] | np.ndarray]


@dataclass
class Outcome:
    latency_s: float = 0.0
    detections: list[Detection] = field(default_factory=list)
    outputs: dict[str, list[int]] | None = None  # raw profiles: output name -> shape
    error: str | None = None  # set when the frame got no result
    results: FrameResults | None = None  # a cascade's nested results (detections are the first stage's)


@dataclass
class Pending:
    index: int
    ts: float
    frame: np.ndarray
    future: Future[Outcome] | None = None
    outcome: Outcome | None = None

    def done(self) -> bool:
        return self.outcome is not None or (self.future is not None and self.future.done())

    def result(self) -> Outcome:
        if self.outcome is None:
            assert self.future is not None
            self.outcome = self.future.result()
        return self.outcome


@dataclass
class StreamConfig:
    stream: int
    profile: str
    window: int
    sync: bool
    target_fps: float
    max_frames: int | None
    stage: str = ""  # the first stage's name (per-stage stats)


class StreamWorker(threading.Thread):
    def __init__(
        self,
        config: StreamConfig,
        source: FrameSource,
        preprocess: Preprocessor,
        predict: Predict,
        decoder: Decoder,
        gate: ServerGate,
        executor: Executor,
        stats: Stats,
        detections: JsonLines | None,
        snapshots: Snapshots,
        stop: threading.Event,
        cascade: Cascade | None = None,
    ) -> None:
        super().__init__(name=f"stream-{config.stream}", daemon=True)
        self.config = config
        self.source = source
        self.preprocess = preprocess
        self.predict = predict
        self.decoder = decoder
        self.gate = gate
        self.executor = executor
        self.stats = stats
        self.detections = detections
        self.snapshots = snapshots
        self.stop_event = stop
        self.cascade = cascade
        self.captured = 0
        self.failure: BaseException | None = None
        self._decode_failed = False

    # -- the stream thread ---------------------------------------------------------------------
    def run(self) -> None:
        pending: deque[Pending] = deque()
        try:
            self._loop(pending)
        except BaseException as exc:  # reported by the app, which stops the other streams
            self.failure = exc
            log.exception("stream %d failed", self.config.stream)
        finally:
            # Finish in-flight work and write its results before leaving (also on SIGTERM).
            while pending:
                try:
                    self._complete(pending.popleft())
                except Exception:
                    log.exception("stream %d: a result could not be written", self.config.stream)
            self.source.close()

    def _loop(self, pending: deque[Pending]) -> None:
        config = self.config
        period = 1.0 / config.target_fps if config.target_fps > 0 else 0.0
        next_due = time.monotonic()
        while not self.stop_event.is_set():
            if config.max_frames is not None and self.captured >= config.max_frames:
                break
            if period:
                delay = next_due - time.monotonic()
                if delay > 0 and self.stop_event.wait(delay):
                    break
                next_due = max(next_due + period, time.monotonic() - period)
            try:
                frame = self.source.read(timeout=0.5)
            except EndOfStream:
                description = self.source.description
                log.info("stream %d: %s ended after %d frames", config.stream, description, self.captured)
                break
            if frame is None:  # a live source had nothing new yet
                self._drain(pending, block=False)
                continue
            item = Pending(self.captured, time.time(), frame)
            self.captured += 1
            admission = self.gate.admit()
            if admission is None:
                item.outcome = Outcome(error="server unavailable")
            else:
                tensor = self.preprocess(frame)
                if config.sync:
                    item.outcome = self._infer(tensor, admission, frame)
                else:
                    item.future = self.executor.submit(self._infer, tensor, admission, frame)
            pending.append(item)
            self._drain(pending, block=False)
            while len(pending) >= config.window:
                self._complete(pending.popleft())
                self._drain(pending, block=False)

    def _drain(self, pending: deque[Pending], block: bool) -> None:
        while pending and (block or pending[0].done()):
            self._complete(pending.popleft())

    # -- a pool thread (or the stream thread in sync mode) -------------------------------------
    def _infer(self, tensor: Payload, admission: Admission, frame: np.ndarray) -> Outcome:
        height, width = frame.shape[:2]
        self.stats.request_started()
        started = time.perf_counter()
        stage = self.config.stage
        try:
            try:
                outputs = self.predict(tensor)
            except RequestRejected as exc:  # the server is up and refused this frame: an error, no outage
                self.gate.success(admission)
                self.stats.stage_request(stage, time.perf_counter() - started, ok=False)
                return Outcome(time.perf_counter() - started, error=f"rejected: {exc}"[:300])
            except Exception as exc:
                self.gate.failure(admission, exc)
                self.stats.stage_request(stage, time.perf_counter() - started, ok=False)
                return Outcome(time.perf_counter() - started, error=f"{type(exc).__name__}: {exc}"[:300])
            latency = time.perf_counter() - started
            self.stats.stage_request(stage, latency, ok=True)
            self.gate.success(admission)
            try:
                found = self.decoder.decode(outputs, width, height)
                outcome = Outcome(latency, [d for d in found if finite(d)])
            except Exception as exc:  # a response the decoder cannot read: this frame has no result
                if not self._decode_failed:
                    self._decode_failed = True
                    log.exception("stream %d: cannot decode the response (logged once)", self.config.stream)
                return Outcome(latency, error=f"decode failed: {type(exc).__name__}: {exc}"[:300])
            if isinstance(self.decoder, RawDecoder):
                outcome.outputs = RawDecoder.describe(outputs)
            if self.cascade is not None:
                outcome.results = self.cascade.run(frame, outcome.detections)
                outcome.latency_s = time.perf_counter() - started
            return outcome
        finally:
            self.stats.request_finished()

    # -- results, in frame order ---------------------------------------------------------------
    def _complete(self, item: Pending) -> None:
        outcome = item.result()
        config = self.config
        record: dict[str, Any] = {
            "profile": config.profile,
            "stream": config.stream,
            "frame": item.index,
            "ts": round(item.ts, 3),
            "width": int(item.frame.shape[1]),
            "height": int(item.frame.shape[0]),
        }
        if outcome.error is None:
            self.stats.result(outcome.latency_s, config.stream)
            record["status"] = "ok"
            record["latency_ms"] = round(outcome.latency_s * 1000.0, 2)
            results = outcome.results
            if results is None:
                record["detections"] = [d.to_json() for d in outcome.detections]
            else:
                record["detections"] = results.detections_json()
                if results.on_frame:
                    record["stages"] = results.stages_json()
            if outcome.outputs is not None:
                record["outputs"] = outcome.outputs
            if self.snapshots.due(config.stream):
                drawn = outcome.detections if results is None else results.all_detections()
                try:
                    self.snapshots.write(config.stream, item.index, item.frame, drawn)
                except (OSError, RuntimeError, ValueError) as exc:
                    log.warning("stream %d: snapshot not written: %s", config.stream, exc)
        else:
            # "server unavailable" frames were never sent: dropped, not an error of a request.
            self.stats.drop(error=outcome.error != "server unavailable", stream=config.stream)
            record["status"] = "dropped"
            record["reason"] = outcome.error
        if self.detections is not None:
            self.detections.write(record)
