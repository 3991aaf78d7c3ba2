"""Result files: appended across restarts, never truncated; snapshots decode and are pruned."""

from __future__ import annotations

import json

import cv2
import numpy as np

from client.decoders import Detection
from client.results import JsonLines, Snapshots, annotate


def test_json_lines_append_across_restarts(tmp_path):
    path = tmp_path / "results" / "detections.jsonl"
    first = JsonLines(path)
    first.write({"frame": 0, "run": 1})
    first.write({"frame": 1, "run": 1})
    first.close()
    second = JsonLines(path)  # a restarted client opens the same file
    second.write({"frame": 0, "run": 2})
    # line-buffered: a reader sees the line before close
    assert path.read_text().count("\n") == 3
    second.close()
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert records == [{"frame": 0, "run": 1}, {"frame": 1, "run": 1}, {"frame": 0, "run": 2}]


def test_json_lines_error_names_the_results_dir(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    try:
        JsonLines(blocker / "stats.jsonl")
    except Exception as exc:  # ClientError
        assert "OVMS_RESULTS_DIR" in str(exc)
    else:
        raise AssertionError("expected an error")


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_snapshots_are_due_per_interval_and_pruned(tmp_path):
    clock = FakeClock()
    snaps = Snapshots(tmp_path / "snapshots", interval_s=10, keep=2, quality=90, clock=clock)
    frame = np.full((120, 160, 3), 40, np.uint8)
    det = Detection("person", 1, 0.9, (10.0, 20.0, 80.0, 100.0))
    assert snaps.due(0) and snaps.due(1)
    written = [snaps.write(0, 0, frame, [det])]
    assert not snaps.due(0) and snaps.due(1)
    clock.now += 9.9
    assert not snaps.due(0)
    for index in (1, 2):
        clock.now += 10
        assert snaps.due(0)
        written.append(snaps.write(0, index, frame, [det]))
    remaining = sorted(p.name for p in (tmp_path / "snapshots").iterdir())
    assert remaining == sorted(p.name for p in written[1:])  # the oldest one was pruned
    image = cv2.imread(str(written[-1]))
    assert image is not None and image.shape == (120, 160, 3)
    # the box outline is drawn in green where the frame was uniformly grey
    assert image[60, 10, 1] > 150 and image[60, 10, 0] < 100


def test_snapshots_disabled_with_zero_interval(tmp_path):
    snaps = Snapshots(tmp_path / "s", interval_s=0, keep=1, quality=80)
    assert not snaps.due(0)
    assert not (tmp_path / "s").exists()


def test_annotate_leaves_the_frame_untouched():
    frame = np.zeros((50, 50, 3), np.uint8)
    out = annotate(frame, [Detection("face", 0, 0.8, (5, 5, 40, 40), ((10.0, 10.0),))])
    assert frame.max() == 0 and out.max() > 0
