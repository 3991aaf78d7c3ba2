"""Real inference over KServe: frames of the project's sample video find the person, sent as raw BGR
tensors and as JPEG images, and both give the same top detection (the served IR takes BGR, what the
server decodes images into: models/manifest.yaml `color`)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from conformance_support import PERSON, PERSON_CLASS, PERSON_INPUT, Detection, decode_ssd, iou, kserve_outputs

FRAME_STEP = 5
MIN_SCORE = 0.8
JPEG_QUALITY = 90
# raw vs JPEG: the same person, within these
SCORE_TOLERANCE = 0.03
MIN_IOU = 0.9


def _frames(video_path, step: int) -> list[np.ndarray]:
    """Every `step`-th frame, resized to the model's 300x300, in OpenCV's BGR order."""
    capture = cv2.VideoCapture(str(video_path))
    frames, index = [], 0
    try:
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            if index % step == 0:
                frames.append(cv2.resize(frame, (300, 300)))
            index += 1
    finally:
        capture.release()
    return frames


def _raw(kserve, frame: np.ndarray) -> list[Detection]:
    data = grpcclient.InferInput(PERSON_INPUT, [1, 300, 300, 3], "UINT8")
    data.set_data_from_numpy(np.ascontiguousarray(frame[np.newaxis]))
    return decode_ssd(kserve_outputs(kserve.infer(PERSON, [data], client_timeout=30)))


def _jpeg(kserve, frame: np.ndarray) -> list[Detection]:
    encoded = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])[1].tobytes()
    data = grpcclient.InferInput(PERSON_INPUT, [1], "BYTES")
    data.set_data_from_numpy(np.array([encoded], dtype=np.object_))
    return decode_ssd(kserve_outputs(kserve.infer(PERSON, [data], client_timeout=30)))


def _top_person(detections: list[Detection]) -> Detection | None:
    people = [d for d in detections if d.label == PERSON_CLASS]
    return max(people, key=lambda d: d.score, default=None)


@pytest.fixture(scope="module")
def frames() -> list[np.ndarray]:
    from launcher.media import ensure_sample_media

    found = _frames(ensure_sample_media().video, FRAME_STEP)
    assert len(found) >= 10, "the sample video should have at least 50 frames"
    return found


def test_sample_video_frames_find_a_person(kserve, frames):
    for number, frame in enumerate(frames):
        detections = _raw(kserve, frame)
        person = _top_person(detections)
        assert person is not None and person.score >= MIN_SCORE, (
            f"frame {number * FRAME_STEP}: no person with score >= {MIN_SCORE}: {detections[:3]}"
        )
        ymin, xmin, ymax, xmax = person.box
        assert 0.0 <= ymin < ymax <= 1.0
        assert 0.0 <= xmin < xmax <= 1.0


def test_raw_and_jpeg_frames_give_the_same_top_detection(kserve, frames):
    for number, frame in enumerate(frames):
        raw, jpeg = _top_person(_raw(kserve, frame)), _top_person(_jpeg(kserve, frame))
        where = f"frame {number * FRAME_STEP}: raw {raw}, jpeg {jpeg}"
        assert raw is not None and jpeg is not None, where
        assert raw.label == jpeg.label, where
        assert abs(raw.score - jpeg.score) <= SCORE_TOLERANCE, where
        assert iou(raw.box, jpeg.box) >= MIN_IOU, where


def test_photo_person_score(kserve):
    from launcher.media import ensure_sample_media

    photo = cv2.resize(cv2.imread(str(ensure_sample_media().photo)), (300, 300))
    person = _top_person(_raw(kserve, photo))
    assert person is not None and person.score >= MIN_SCORE
