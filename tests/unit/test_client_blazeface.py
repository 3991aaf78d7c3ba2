"""BlazeFace: MediaPipe anchors, NMS, and decoding of the real face model's output on the astronaut."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from client.decoders import BlazefaceDecoder
from client.decoders.anchors import FRONT_128, generate_anchors
from client.decoders.blazeface import iou, plain_nms, weighted_nms
from client.preprocess import Preprocessor
from client.profile import BlazefacePostprocess, load_profile

PROFILES = Path(__file__).resolve().parents[2] / "profiles"

# The astronaut's face in the 512x512 photo (checked by eye on the image): x 170-290, y 60-200.
FACE_REGION = (170.0, 60.0, 290.0, 200.0)


def test_front_anchors_follow_mediapipe_options():
    anchors = generate_anchors(FRONT_128)
    assert anchors.shape == (896, 4)
    # stride 8: 16x16 cells x 2 anchors, then stride 16 (three layers share it): 8x8 cells x 6 anchors
    np.testing.assert_allclose(anchors[0], [0.5 / 16, 0.5 / 16, 1, 1])
    np.testing.assert_allclose(anchors[1], anchors[0])
    np.testing.assert_allclose(anchors[2], [1.5 / 16, 0.5 / 16, 1, 1])
    np.testing.assert_allclose(anchors[511], [15.5 / 16, 15.5 / 16, 1, 1])
    np.testing.assert_allclose(anchors[512:518], [[0.5 / 8, 0.5 / 8, 1, 1]] * 6)
    np.testing.assert_allclose(anchors[895], [7.5 / 8, 7.5 / 8, 1, 1])


def test_weighted_nms_averages_a_cluster_by_score():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60]], np.float32)
    points = np.zeros((3, 6, 2), np.float32)
    scores = np.array([0.9, 0.3, 0.8], np.float32)
    out_boxes, _, out_scores = weighted_nms(boxes, points, scores, 0.3, 10)
    assert out_scores.tolist() == pytest.approx([0.9, 0.8])
    np.testing.assert_allclose(out_boxes[0], (boxes[0] * 0.9 + boxes[1] * 0.3) / 1.2, rtol=1e-5)
    np.testing.assert_allclose(out_boxes[1], boxes[2])


def test_plain_nms_keeps_the_best_of_each_cluster():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60]], np.float32)
    points = np.zeros((3, 6, 2), np.float32)
    out_boxes, _, out_scores = plain_nms(boxes, points, np.array([0.3, 0.9, 0.8]), 0.3, 10)
    np.testing.assert_allclose(out_boxes, boxes[[1, 2]])
    assert out_scores.tolist() == pytest.approx([0.9, 0.8])


def test_synthetic_regressor_decodes_relative_to_its_anchor():
    spec = BlazefacePostprocess(type="blazeface", threshold=0.5)
    dec = BlazefaceDecoder(spec)
    regressors = np.zeros((1, 896, 16), np.float32)
    scores = np.full((1, 896, 1), -10.0, np.float32)
    index = 512 + (3 * 8 + 5) * 6  # stride-16 map, row 3, column 5: anchor centre (5.5/8, 3.5/8)
    regressors[0, index, :4] = (4.0, -8.0, 32.0, 16.0)  # offsets and size in 128x128 input pixels
    scores[0, index, 0] = 3.0
    [det] = dec.decode({"regressors": regressors, "classificators": scores}, 256, 128)
    cx, cy = 5.5 / 8 + 4 / 128, 3.5 / 8 - 8 / 128
    w, h = 32 / 128, 16 / 128
    expected = ((cx - w / 2) * 256, (cy - h / 2) * 128, (cx + w / 2) * 256, (cy + h / 2) * 128)
    assert det.box == pytest.approx(expected)
    assert det.score == pytest.approx(1 / (1 + np.exp(-3.0)))
    assert det.label == "face"
    assert len(det.keypoints) == 6


def _prepared_face_model() -> Path:
    from launcher.models import prepare_models

    [model] = prepare_models(names=["face-detection"])
    return model.path / "model.xml"


def _astronaut() -> np.ndarray:
    from launcher.media import ensure_sample_media

    image = cv2.imread(str(ensure_sample_media().photo), cv2.IMREAD_COLOR)
    assert image is not None and image.shape == (512, 512, 3)
    return image


@pytest.mark.slow
def test_real_face_model_finds_the_astronauts_face():
    import openvino as ov

    profile = load_profile(PROFILES / "face-detection", {}).profile
    assert isinstance(profile.postprocess, BlazefacePostprocess)
    compiled = ov.Core().compile_model(str(_prepared_face_model()), "CPU")
    photo = _astronaut()
    tensor = Preprocessor(profile.model)(photo)
    assert tensor.shape == (1, 128, 128, 3) and tensor.dtype == np.float32
    assert tensor.min() >= -1.0 and tensor.max() <= 1.0
    result = compiled(tensor)
    outputs = {port.get_any_name(): result[port] for port in compiled.outputs}
    faces = BlazefaceDecoder(profile.postprocess).decode(outputs, 512, 512)

    assert len(faces) == 1, faces
    face = faces[0]
    assert face.score > 0.8
    overlap = iou(np.array(face.box, np.float32), np.array([FACE_REGION], np.float32))[0]
    assert overlap > 0.5, (face.box, overlap)
    x1, y1, x2, y2 = face.box
    assert FACE_REGION[0] <= (x1 + x2) / 2 <= FACE_REGION[2]
    assert FACE_REGION[1] <= (y1 + y2) / 2 <= FACE_REGION[3]
    # Keypoints 0 and 1 are the eyes: inside the box, in its upper half.
    for x, y in face.keypoints[:2]:
        assert x1 <= x <= x2 and y1 <= y <= (y1 + y2) / 2


@pytest.mark.slow
def test_real_person_model_and_ssd_decoder_find_the_astronaut():
    import openvino as ov

    from client.decoders import SsdDecoder
    from launcher.models import prepare_models

    profile = load_profile(PROFILES / "person-detection", {}).profile
    [model] = prepare_models(names=["person-detection"])
    compiled = ov.Core().compile_model(str(model.path / "model.xml"), "CPU")
    photo = _astronaut()
    result = compiled(Preprocessor(profile.model)(photo))
    outputs = {name: result[port] for port in compiled.outputs for name in port.get_names()}
    people = SsdDecoder(profile.postprocess).decode(outputs, 512, 512)
    assert people and people[0].label == "person" and people[0].score > 0.85
    x1, y1, x2, y2 = people[0].box
    # the astronaut fills the lower-left two thirds of the photo and includes her face
    assert x1 < FACE_REGION[0] and y1 < FACE_REGION[1] + 20 and x2 > FACE_REGION[2] and y2 > 400
