"""SSD decoding on synthetic outputs: pixels, threshold, labels, output-name aliases."""

from __future__ import annotations

import numpy as np
import pytest

from client.decoders import SsdDecoder, check_outputs
from client.errors import ModelMismatchError
from client.profile import SsdPostprocess


def tf_outputs(rows: list[tuple[float, float, float, float, float, float]], total: int = 100) -> dict:
    """rows of (ymin, xmin, ymax, xmax, class, score), padded like the TF OD API pads to 100."""
    boxes = np.zeros((1, total, 4), np.float32)
    classes = np.zeros((1, total), np.float32)
    scores = np.zeros((1, total), np.float32)
    for i, (y1, x1, y2, x2, c, s) in enumerate(rows):
        boxes[0, i] = (y1, x1, y2, x2)
        classes[0, i] = c
        scores[0, i] = s
    return {
        "detection_boxes:0": boxes,
        "detection_classes:0": classes,
        "detection_scores:0": scores,
        "num_detections:0": np.array([total], np.float32),
    }


def decoder(**kwargs) -> SsdDecoder:
    return SsdDecoder(SsdPostprocess.model_validate({"type": "ssd", **kwargs}))


def test_boxes_are_converted_from_normalised_yxyx_to_pixels():
    outputs = tf_outputs([(0.1, 0.2, 0.5, 0.6, 1, 0.9)])
    [det] = decoder(labels={1: "person"}).decode(outputs, 640, 480)
    assert det.label == "person"
    assert det.class_id == 1
    assert det.score == pytest.approx(0.9)
    assert det.box == pytest.approx((0.2 * 640, 0.1 * 480, 0.6 * 640, 0.5 * 480), abs=1e-3)


def test_threshold_keeps_only_scores_at_or_above_it_sorted_by_score():
    outputs = tf_outputs(
        [
            (0, 0, 0.5, 0.5, 1, 0.55),
            (0, 0, 0.2, 0.2, 1, 0.49),
            (0.5, 0.5, 1, 1, 1, 0.8),
            (0.1, 0.1, 0.3, 0.3, 1, 0.5),
        ]
    )
    dets = decoder(threshold=0.5).decode(outputs, 100, 100)
    assert [round(d.score, 2) for d in dets] == [0.8, 0.55, 0.5]


def test_unknown_class_ids_keep_their_number_unless_only_labeled():
    outputs = tf_outputs([(0, 0, 1, 1, 1, 0.9), (0, 0, 1, 1, 3, 0.8)])
    labels = [d.label for d in decoder(labels={1: "person"}).decode(outputs, 10, 10)]
    assert labels == ["person", "3"]
    only = decoder(labels={1: "person"}, only_labeled=True).decode(outputs, 10, 10)
    assert [d.label for d in only] == ["person"]


def test_num_detections_limits_the_rows_read():
    outputs = tf_outputs([(0, 0, 1, 1, 1, 0.9), (0, 0, 1, 1, 1, 0.8)])
    outputs["num_detections:0"] = np.array([1], np.float32)
    assert len(decoder().decode(outputs, 10, 10)) == 1


def test_boxes_are_clipped_to_the_frame():
    outputs = tf_outputs([(-0.1, -0.2, 1.3, 1.1, 1, 0.9)])
    [det] = decoder().decode(outputs, 200, 100)
    assert det.box == pytest.approx((0.0, 0.0, 200.0, 100.0))


def test_max_detections_caps_the_result():
    outputs = tf_outputs([(0, 0, 1, 1, 1, 0.9 - i * 0.01) for i in range(10)])
    assert len(decoder(max_detections=3).decode(outputs, 10, 10)) == 3


def test_internal_output_names_are_accepted_as_aliases():
    outputs = tf_outputs([(0, 0, 0.5, 0.5, 1, 0.9)])
    nms = "Postprocessor/BatchMultiClassNonMaxSuppression/map/"
    renamed = {
        nms + "TensorArrayStack/TensorArrayGatherV3:0": outputs["detection_boxes:0"],
        "add:0": outputs["detection_classes:0"],
        nms + "TensorArrayStack_1/TensorArrayGatherV3:0": outputs["detection_scores:0"],
        "Postprocessor/ToFloat_3:0": outputs["num_detections:0"],
    }
    [det] = decoder().decode(renamed, 100, 100)
    assert det.box == pytest.approx((0, 0, 50, 50))


def test_detection_output_format_stops_at_negative_image_id():
    rows = np.zeros((1, 1, 5, 7), np.float32)
    rows[0, 0, 0] = (0, 2, 0.95, 0.1, 0.2, 0.3, 0.4)
    rows[0, 0, 1] = (0, 1, 0.30, 0.0, 0.0, 1.0, 1.0)
    rows[0, 0, 2] = (-1, 0, 0, 0, 0, 0, 0)
    rows[0, 0, 3] = (0, 1, 0.99, 0.0, 0.0, 1.0, 1.0)  # after the terminator: ignored
    dec = decoder(format="detection_output", labels={2: "car"})
    [det] = dec.decode({"detection_out": rows}, 1000, 500)
    assert det.label == "car"
    assert det.box == pytest.approx((100, 100, 300, 200))


def test_missing_output_is_a_clear_error_naming_both_sides():
    with pytest.raises(ModelMismatchError) as info:
        decoder().decode({"something_else": np.zeros(3)}, 10, 10)
    message = info.value.render()
    assert "'boxes'" in message and "detection_boxes:0" in message and "something_else" in message


def test_check_outputs_resolves_the_name_the_server_reports():
    available = {
        "detection_boxes:0": {},
        "add:0": {},
        "detection_scores:0": {},
        "Postprocessor/ToFloat_3:0": {},
    }
    resolved = check_outputs(decoder(), available, "person-detection")
    assert resolved == {
        "boxes": "detection_boxes:0",
        "classes": "add:0",
        "scores": "detection_scores:0",
        "count": "Postprocessor/ToFloat_3:0",
    }
    with pytest.raises(ModelMismatchError, match=r"model 'person-detection' has no output for 'count'"):
        without_count = {k: v for k, v in available.items() if "ToFloat" not in k}
        check_outputs(decoder(), without_count, "person-detection")
