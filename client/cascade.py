"""The later stages of a cascade, run for one frame once its first stage has answered.

Stages run in profile order; each later stage runs on the whole frame or on crops of an earlier
stage's results (boxes, rotated boxes, regions of landmarks), and all requests of one stage go out
at once on a pool of their own, so a frame waits for its slowest crop, not for the sum of them. A
request that fails marks that crop's result as failed; the rest of the frame's results stay. Results
nest: each result carries, under `stages`, the results of the later stages run on crops of it."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Executor, Future
from concurrent.futures import wait as wait_all
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from .crops import Crop, box_crop, mirrored, points_crop, quad_crop, rotated, to_frame
from .decoders import Decoder, Detection
from .decoders.base import finite
from .errors import RequestRejected
from .preprocess import Payload, Preprocessor
from .profile import CropSpec, Stage
from .stats import Stats

log = logging.getLogger("client.cascade")

Outputs = Mapping[str, np.ndarray] | np.ndarray


class Reader(Protocol):
    """A stage that runs in the client (a barcode reader): an image in, results in its pixels."""

    def read(self, image: np.ndarray) -> list[Detection]: ...


@dataclass
class Failure:
    """A crop (or a whole-frame run) whose stage got no result."""

    error: str
    region: str | None = None

    def to_json(self) -> dict[str, Any]:
        record: dict[str, Any] = {"status": "failed", "error": self.error}
        if self.region is not None:
            record["region"] = self.region
        return record


@dataclass
class Node:
    """One result in frame pixels, with the results of later stages run on crops of it."""

    detection: Detection
    region: str | None = None
    children: dict[str, list[Node | Failure]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        record = self.detection.to_json()
        if self.region is not None:
            record["region"] = self.region
        if self.children:
            record["stages"] = {
                name: [item.to_json() for item in items] for name, items in self.children.items()
            }
        return record


@dataclass
class FrameResults:
    first: list[Node]
    on_frame: dict[str, list[Node | Failure]] = field(default_factory=dict)  # later stages on the frame
    by_stage: dict[str, list[Node]] = field(default_factory=dict)

    def detections_json(self) -> list[dict[str, Any]]:
        return [node.to_json() for node in self.first]

    def stages_json(self) -> dict[str, list[dict[str, Any]]]:
        return {name: [item.to_json() for item in items] for name, items in self.on_frame.items()}

    def all_detections(self) -> list[Detection]:
        return [node.detection for nodes in self.by_stage.values() for node in nodes]


class StageFailed(Exception):
    """One run of a stage got no result; the message says why (the frame's other results stay)."""


class StageRunner:
    """One later stage on one image: preprocess -> request -> decode, or the client-side reader. Counts
    each request in the stage's stats. Whatever fails here fails this crop only: a later stage's
    model that times out or refuses every request must not stop the first stage's results (the
    server gate follows the first stage, whose failure means the server cannot be used)."""

    def __init__(
        self,
        stage: Stage,
        stats: Stats,
        *,
        preprocess: Preprocessor | None = None,
        predict: Callable[[Payload], Outputs] | None = None,
        decoder: Decoder | None = None,
        reader: Reader | None = None,
    ) -> None:
        self.stage = stage
        self.stats = stats
        self.preprocess = preprocess
        self.predict = predict
        self.decoder = decoder
        self.reader = reader
        self._decode_failed = False

    def __call__(self, image: np.ndarray) -> list[Detection]:
        name = self.stage.name
        height, width = image.shape[:2]
        if self.reader is not None:
            started = time.perf_counter()
            try:
                found = self.reader.read(image)
            except Exception as exc:
                self.stats.stage_request(name, time.perf_counter() - started, ok=False)
                raise StageFailed(f"{type(exc).__name__}: {exc}"[:300]) from exc
            self.stats.stage_request(name, time.perf_counter() - started, ok=True)
            return [d for d in found if finite(d)]
        assert self.preprocess is not None and self.predict is not None and self.decoder is not None
        payload = self.preprocess(image)
        started = time.perf_counter()
        try:
            outputs = self.predict(payload)
        except RequestRejected as exc:  # the server is up and refused this crop
            self.stats.stage_request(name, time.perf_counter() - started, ok=False)
            raise StageFailed(f"rejected: {exc}"[:300]) from exc
        except Exception as exc:
            self.stats.stage_request(name, time.perf_counter() - started, ok=False)
            raise StageFailed(f"{type(exc).__name__}: {exc}"[:300]) from exc
        self.stats.stage_request(name, time.perf_counter() - started, ok=True)
        try:
            return [d for d in self.decoder.decode(outputs, width, height) if finite(d)]
        except Exception as exc:
            if not self._decode_failed:
                self._decode_failed = True
                log.exception("stage %s: cannot decode the response (logged once)", name)
            raise StageFailed(f"decode failed: {type(exc).__name__}: {exc}"[:300]) from exc


@dataclass
class _Job:
    parent: Node | None  # None: a run on the whole frame
    crop: Crop | None
    future: Future[list[Detection]] | None = None


class Cascade:
    """Runs the later stages of one profile for one frame at a time (shared by every stream). A stage
    waits at most `stage_timeout_s` for its crops (each request has its own timeout too): a crop not
    answered by then fails, so a frame never waits much longer than its stages' timeouts."""

    def __init__(
        self, first: Stage, runners: Sequence[StageRunner], pool: Executor, stage_timeout_s: float = 30.0
    ) -> None:
        self.first = first
        self.runners = list(runners)
        self.pool = pool
        self.stage_timeout_s = stage_timeout_s
        self._failed_once: set[str] = set()

    def run(self, frame: np.ndarray, detections: Sequence[Detection]) -> FrameResults:
        first = [Node(d) for d in detections]
        results = FrameResults(first, by_stage={self.first.name: first})
        for runner in self.runners:
            try:
                self._run_stage(runner, frame, results)
            except Exception as exc:  # a bug cutting or placing crops: this stage fails, the frame goes on
                name = runner.stage.name
                if name not in self._failed_once:
                    self._failed_once.add(name)
                    log.exception("stage %s failed on a frame (logged once)", name)
                failure = Failure(f"{type(exc).__name__}: {exc}"[:300])
                results.on_frame.setdefault(name, []).append(failure)
                results.by_stage[name] = []
        return results

    def _run_stage(self, runner: StageRunner, frame: np.ndarray, results: FrameResults) -> None:
        stage = runner.stage
        jobs = [_Job(None, None)] if stage.crops is None else self._cut(stage.crops, frame, results)
        for job in jobs:
            image = frame if job.crop is None else job.crop.image
            job.future = self.pool.submit(runner, image)
        _, late = wait_all(
            [job.future for job in jobs if job.future is not None], timeout=self.stage_timeout_s
        )
        for future in late:
            future.cancel()  # a queued crop is not sent; a running one ends at its request timeout
        made: list[Node] = []
        for job in jobs:
            assert job.future is not None
            region = job.crop.region if job.crop is not None else None
            if job.future in late:
                items: list[Node | Failure] = [
                    Failure(f"no answer within {self.stage_timeout_s:g} s", region)
                ]
                target = results.on_frame if job.parent is None else job.parent.children
                target.setdefault(stage.name, []).extend(items)
                continue
            try:
                found = job.future.result()
            except StageFailed as exc:
                items: list[Node | Failure] = [Failure(str(exc), region)]
            except Exception as exc:  # a bug in a decoder or reader: this crop fails, the frame goes on
                log.exception("stage %s failed on a crop", stage.name)
                items = [Failure(f"{type(exc).__name__}: {exc}"[:300], region)]
            else:
                placed = (d if job.crop is None else to_frame(d, job.crop) for d in found)
                nodes = [Node(d, region) for d in placed if finite(d)]
                made += nodes
                items = list(nodes)
            target = results.on_frame if job.parent is None else job.parent.children
            target.setdefault(stage.name, []).extend(items)
        results.by_stage[stage.name] = made

    def _cut(self, spec: CropSpec, frame: np.ndarray, results: FrameResults) -> list[_Job]:
        """The crops of one later stage: the source stage's results that pass the filters, best score
        first, at most max_crops crops for the frame."""
        candidates = [
            node
            for node in results.by_stage.get(spec.source, [])
            if (spec.labels is None or node.detection.label in spec.labels)
            and node.detection.score >= spec.min_score
        ]
        candidates.sort(key=lambda node: node.detection.score, reverse=True)
        jobs: list[_Job] = []
        for node in candidates:
            for crop in self._crops_of(spec, frame, node):
                if len(jobs) >= spec.max_crops:
                    return jobs
                jobs.append(_Job(node, crop))
        return jobs

    def _crops_of(self, spec: CropSpec, frame: np.ndarray, node: Node) -> list[Crop]:
        det = node.detection
        crops: list[Crop] = []
        if spec.points is not None:
            for region, indices in spec.points.items():
                if max(indices) >= len(det.points):
                    continue
                crop = points_crop(frame, det.points, indices, spec.padding, region)
                if crop is not None:
                    crops.append(mirrored(crop) if region in spec.mirror else crop)
            return crops
        if det.quad and spec.shape != "box":
            crop = quad_crop(frame, det.quad, spec.padding)
        elif spec.shape == "quad":
            crop = None  # asked for rotated boxes only; this result has none
        else:
            crop = box_crop(frame, det.box, spec.padding, spec.square)
        if crop is None:
            return []
        if spec.align is not None:
            crop = rotated(crop, _turn(spec, node))
        return [crop]


def _turn(spec: CropSpec, node: Node) -> int:
    """Degrees to turn a crop by the aligning stage's answer for the same result (0 without one)."""
    assert spec.align is not None
    for item in node.children.get(spec.align.by, []):
        if isinstance(item, Node) and item.detection.score >= spec.align.min_score:
            return spec.align.rotate.get(item.detection.label, 0)
    return 0
