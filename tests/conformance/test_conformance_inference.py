"""Real inference: frames of the project's sample video through ovmsclient find the person."""

from __future__ import annotations

import cv2
import numpy as np
from conformance_support import PERSON, PERSON_CLASS, PERSON_INPUT, decode_ssd

FRAME_STEP = 5
MIN_SCORE = 0.8


def _frames(video_path, step: int) -> list[np.ndarray]:
    capture = cv2.VideoCapture(str(video_path))
    frames, index = [], 0
    try:
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            if index % step == 0:
                rgb = cv2.cvtColor(cv2.resize(frame, (300, 300)), cv2.COLOR_BGR2RGB)
                frames.append(np.ascontiguousarray(rgb[np.newaxis]))
            index += 1
    finally:
        capture.release()
    return frames


def test_sample_video_frames_find_a_person(client):
    from launcher.media import ensure_sample_media

    frames = _frames(ensure_sample_media().video, FRAME_STEP)
    assert len(frames) >= 10, "the sample video should have at least 50 frames"
    for number, frame in enumerate(frames):
        detections = decode_ssd(client.predict({PERSON_INPUT: frame}, PERSON))
        people = [d for d in detections if d.label == PERSON_CLASS and d.score >= MIN_SCORE]
        assert people, f"frame {number * FRAME_STEP}: no person with score >= {MIN_SCORE}: {detections[:3]}"
        ymin, xmin, ymax, xmax = people[0].box
        assert 0.0 <= ymin < ymax <= 1.0
        assert 0.0 <= xmin < xmax <= 1.0


def test_photo_person_score(client):
    from launcher.media import ensure_sample_media

    photo = cv2.imread(str(ensure_sample_media().photo))
    rgb = cv2.cvtColor(cv2.resize(photo, (300, 300)), cv2.COLOR_BGR2RGB)[np.newaxis]
    detections = decode_ssd(client.predict({PERSON_INPUT: np.ascontiguousarray(rgb)}, PERSON))
    best = max((d.score for d in detections if d.label == PERSON_CLASS), default=0.0)
    assert best >= MIN_SCORE
