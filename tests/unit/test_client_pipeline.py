"""The stream pipeline with a fake server: pipelining window, frame order, drops, draining on stop."""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import pytest

from client.backoff import Backoff
from client.decoders import SsdDecoder
from client.errors import RequestRejected
from client.health import ServerGate
from client.pipeline import StreamConfig, StreamWorker
from client.preprocess import Preprocessor
from client.profile import EncodingSpec, ModelSpec, Size, SsdPostprocess
from client.results import JsonLines, Snapshots
from client.sources import EndOfStream
from client.stats import Stats

SPEC = ModelSpec(name="m", input="in", size={"width": 8, "height": 8}, dtype="uint8", color="bgr")


class CountingSource:
    """Frames whose pixels all equal their index (mod 256); ends after `count` frames."""

    description = "counting source"

    def __init__(self, count: int) -> None:
        self.count = count
        self.next = 0
        self.closed = False

    def open(self) -> None:
        pass

    def read(self, timeout: float) -> np.ndarray | None:
        if self.next >= self.count:
            raise EndOfStream
        frame = np.full((16, 24, 3), self.next % 256, np.uint8)
        self.next += 1
        return frame

    def close(self) -> None:
        self.closed = True


class FakeServer:
    """Answers with one detection whose class id is the frame's pixel value + 1."""

    def __init__(
        self,
        barrier: int = 0,
        fail_from: int | None = None,
        garbage_at: int | None = None,
        reject_every: int = 0,
    ) -> None:
        self.lock = threading.Lock()
        self.active = 0
        self.max_active = 0
        self.calls = 0
        self.threads: set[str] = set()
        self.barrier = threading.Barrier(barrier) if barrier > 1 else None
        self.fail_from = fail_from
        self.garbage_at = garbage_at
        self.reject_every = reject_every
        self.release = threading.Event()
        self.release.set()

    def predict(self, tensor: np.ndarray) -> dict[str, np.ndarray]:
        index = int(tensor[0, 0, 0, 0])
        with self.lock:
            self.active += 1
            self.max_active = max(self.max_active, self.active)
            self.calls += 1
            self.threads.add(threading.current_thread().name)
        try:
            if self.barrier is not None and index < self.barrier.parties:
                # proves that `parties` requests are in flight at once (raises if they never are)
                self.barrier.wait(timeout=30)
            # later frames of each group finish first, so completion order differs from frame order
            time.sleep((3 - index % 4) * 0.003)
            assert self.release.wait(timeout=30)
            if self.fail_from is not None and index >= self.fail_from:
                raise ConnectionError("Error occurred during handling the request: connection refused")
            if index == self.garbage_at:
                return {"unexpected_output": np.zeros((1, 3), np.float32)}
            if self.reject_every and index % self.reject_every == self.reject_every - 1:
                raise RequestRejected("UNKNOWN: Unknown error")  # what OVMS answers for a corrupt image
            return {
                "detection_boxes:0": np.array([[[0.0, 0.0, 0.5, 0.5]]], np.float32),
                "detection_classes:0": np.array([[index + 1]], np.float32),
                "detection_scores:0": np.array([[0.9]], np.float32),
                "num_detections:0": np.array([1], np.float32),
            }
        finally:
            with self.lock:
                self.active -= 1


class FrozenClock:
    def __call__(self) -> float:
        return 0.0


def make_worker(tmp_path: Path, server: FakeServer, frames: int, window: int, sync: bool = False, stop=None):
    stats = Stats(window_s=60)
    detections = JsonLines(tmp_path / "detections.jsonl")
    worker = StreamWorker(
        StreamConfig(
            stream=0,
            profile="test",
            window=window,
            sync=sync,
            target_fps=0,
            max_frames=None,
        ),
        CountingSource(frames),
        Preprocessor(SPEC),
        server.predict,
        SsdDecoder(SsdPostprocess(type="ssd", threshold=0.5)),
        ServerGate(Backoff(1.0, 2.0, jitter=0), clock=FrozenClock()),  # no probe ever becomes due
        pool := ThreadPoolExecutor(max_workers=window),
        stats,
        detections,
        Snapshots(tmp_path / "snapshots", 0, 1, 80),
        stop or threading.Event(),
    )
    return worker, stats, detections, pool


def records(tmp_path: Path) -> list[dict]:
    return [json.loads(line) for line in (tmp_path / "detections.jsonl").read_text().splitlines()]


def run_to_end(worker, detections, pool):
    worker.start()
    worker.join(timeout=60)
    assert not worker.is_alive()
    pool.shutdown()
    detections.close()
    assert worker.failure is None


def test_pipelined_requests_overlap_and_results_keep_frame_order(tmp_path):
    server = FakeServer(barrier=4)
    worker, stats, detections, pool = make_worker(tmp_path, server, frames=40, window=4)
    run_to_end(worker, detections, pool)
    assert server.max_active == 4  # the barrier proved 4 were in flight; the window allows no more
    rows = records(tmp_path)
    assert [r["frame"] for r in rows] == list(range(40))
    assert all(r["status"] == "ok" for r in rows)
    # each result belongs to its own frame
    assert [r["detections"][0]["class_id"] for r in rows] == [i + 1 for i in range(40)]
    assert rows[0]["detections"][0]["box"] == [0.0, 0.0, 12.0, 8.0]  # 24x16 frame, half of it
    assert (rows[0]["width"], rows[0]["height"]) == (24, 16)
    line = stats.snapshot()
    assert (line["frames"], line["dropped"], line["errors"], line["in_flight"]) == (40, 0, 0, 0)
    assert worker.source.closed


def test_sync_mode_sends_one_request_at_a_time_from_the_stream_thread(tmp_path):
    server = FakeServer()
    worker, _, detections, pool = make_worker(tmp_path, server, frames=10, window=1, sync=True)
    run_to_end(worker, detections, pool)
    assert server.max_active == 1
    assert server.threads == {"stream-0"}
    assert [r["frame"] for r in records(tmp_path)] == list(range(10))


def test_server_failure_drops_frames_and_counts_errors(tmp_path):
    server = FakeServer(fail_from=5)
    worker, stats, detections, pool = make_worker(tmp_path, server, frames=30, window=1)
    run_to_end(worker, detections, pool)
    rows = records(tmp_path)
    assert [r["frame"] for r in rows] == list(range(30))
    assert [r["status"] for r in rows[:5]] == ["ok"] * 5
    assert all(r["status"] == "dropped" for r in rows[5:])
    assert "ConnectionError" in rows[5]["reason"]
    assert all(r["reason"] == "server unavailable" for r in rows[6:])  # never sent: the gate is closed
    assert server.calls == 6
    line = stats.snapshot()
    assert (line["frames"], line["dropped"], line["errors"]) == (5, 25, 1)


def test_a_refused_frame_is_an_error_and_the_stream_goes_on(tmp_path):
    server = FakeServer(reject_every=5)
    worker, stats, detections, pool = make_worker(tmp_path, server, frames=20, window=2)
    run_to_end(worker, detections, pool)
    rows = records(tmp_path)
    refused = [r["frame"] for r in rows if r["status"] == "dropped"]
    assert refused == [4, 9, 14, 19]
    assert all(r["reason"] == "rejected: UNKNOWN: Unknown error" for r in rows if r["status"] == "dropped")
    assert server.calls == 20  # every frame was sent: a refusal does not close the gate
    line = stats.snapshot()
    assert (line["frames"], line["dropped"], line["errors"]) == (16, 4, 4)


def test_stop_finishes_in_flight_requests_and_writes_their_results(tmp_path):
    server = FakeServer()
    server.release.clear()  # every request waits until released
    stop = threading.Event()
    worker, stats, detections, pool = make_worker(tmp_path, server, frames=1000, window=3, stop=stop)
    worker.start()
    deadline = time.monotonic() + 30
    while server.calls < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert server.calls == 3  # the window is full and the stream waits for the oldest request
    stop.set()
    server.release.set()
    worker.join(timeout=30)
    pool.shutdown()
    detections.close()
    rows = records(tmp_path)
    assert len(rows) == worker.captured
    assert [r["status"] for r in rows] == ["ok"] * len(rows)
    assert worker.captured < 1000
    assert stats.snapshot()["in_flight"] == 0


@pytest.mark.parametrize("layout", ["NHWC", "NCHW"])
def test_preprocess_resizes_once_and_lays_out_the_tensor(layout):
    spec = ModelSpec(
        name="m",
        input="x",
        layout=layout,
        size={"width": 4, "height": 2},
        dtype="float32",
        color="rgb",
        mean=127.5,
        std=127.5,
    )
    frame = np.zeros((10, 20, 3), np.uint8)
    frame[..., 0] = 255  # blue in BGR
    tensor = Preprocessor(spec)(frame)
    assert tensor.flags.c_contiguous and tensor.dtype == np.float32
    if layout == "NHWC":
        assert tensor.shape == (1, 2, 4, 3)
        np.testing.assert_allclose(tensor[0, 0, 0], [-1.0, -1.0, 1.0])  # RGB order, scaled to [-1, 1]
    else:
        assert tensor.shape == (1, 3, 2, 4)
        np.testing.assert_allclose(tensor[0, :, 0, 0], [-1.0, -1.0, 1.0])


def test_preprocess_uint8_keeps_pixels():
    tensor = Preprocessor(SPEC)(np.full((8, 8, 3), 7, np.uint8))
    assert tensor.shape == (1, 8, 8, 3) and tensor.dtype == np.uint8 and int(tensor.max()) == 7


@pytest.mark.parametrize("encoding", ["jpeg", "png"])
def test_preprocess_encodes_the_resized_bgr_frame(encoding):
    spec = SPEC.model_copy(update={"size": Size(width=32, height=24)})
    frame = np.zeros((48, 64, 3), np.uint8)
    frame[:, :, 0] = 200  # blue in OpenCV's BGR order
    prepare = Preprocessor(spec, EncodingSpec(format=encoding, jpeg_quality=95))
    payload = prepare(frame)
    assert isinstance(payload, bytes)
    assert prepare.shape == (1,)
    decoded = cv2.imdecode(np.frombuffer(payload, np.uint8), cv2.IMREAD_UNCHANGED)
    assert decoded.shape == (24, 32, 3)  # resized before encoding: the server need not resize
    assert abs(int(decoded[..., 0].mean()) - 200) <= 2 and int(decoded[..., 2].max()) <= 3  # still BGR


def test_jpeg_quality_trades_bytes_for_fidelity():
    rng = np.random.default_rng(7)
    frame = rng.integers(0, 255, (300, 300, 3), dtype=np.uint8)
    spec = SPEC.model_copy(update={"size": Size(width=300, height=300)})
    low = Preprocessor(spec, EncodingSpec(format="jpeg", jpeg_quality=30))(frame)
    high = Preprocessor(spec, EncodingSpec(format="jpeg", jpeg_quality=95))(frame)
    assert len(low) < len(high) < frame.nbytes


def test_a_response_the_decoder_cannot_read_drops_that_frame_only(tmp_path):
    server = FakeServer(garbage_at=3)
    worker, stats, detections, pool = make_worker(tmp_path, server, frames=8, window=2)
    run_to_end(worker, detections, pool)
    rows = records(tmp_path)
    assert [r["status"] for r in rows] == ["ok"] * 3 + ["dropped"] + ["ok"] * 4
    assert rows[3]["reason"].startswith("decode failed: ModelMismatchError")
    assert stats.snapshot()["errors"] == 1
