"""SSD post-processing: TensorFlow Object Detection API outputs or OpenVINO DetectionOutput rows."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from ..profile import SsdPostprocess
from .base import Detection, Outputs, pick, to_pixels


class SsdDecoder:
    """Boxes already went through NMS inside the model; keep those above the threshold, in pixels."""

    def __init__(self, spec: SsdPostprocess) -> None:
        self.spec = spec
        outputs = spec.outputs
        self.roles: Mapping[str, Sequence[str]]
        if spec.format == "tf":
            self.roles = {
                "boxes": outputs.boxes,
                "classes": outputs.classes,
                "scores": outputs.scores,
                "count": outputs.count,
            }
        else:
            self.roles = {"detection_output": outputs.detection_output}

    def decode(self, outputs: Outputs, frame_width: int, frame_height: int) -> list[Detection]:
        if self.spec.format == "tf":
            boxes, classes, scores = self._tf(outputs)
        else:
            boxes, classes, scores = self._detection_output(outputs)
        keep = scores >= self.spec.threshold
        if self.spec.only_labeled:
            keep &= np.isin(classes, list(self.spec.labels))
        order = np.argsort(-scores[keep], kind="stable")[: self.spec.max_detections]
        boxes, classes, scores = boxes[keep][order], classes[keep][order], scores[keep][order]
        pixels = to_pixels(boxes, frame_width, frame_height)
        labels = self.spec.labels
        return [
            Detection(
                label=labels.get(int(c), str(int(c))),
                class_id=int(c),
                score=float(s),
                box=(float(b[0]), float(b[1]), float(b[2]), float(b[3])),
            )
            for b, c, s in zip(pixels, classes, scores, strict=True)
        ]

    def _tf(self, outputs: Outputs) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """boxes [1,N,4] (y_min, x_min, y_max, x_max) normalised, classes [1,N], scores [1,N], count [1]."""
        roles = self.roles
        boxes = pick(outputs, roles["boxes"], "boxes").reshape(-1, 4)
        classes = pick(outputs, roles["classes"], "classes").reshape(-1)
        scores = pick(outputs, roles["scores"], "scores").reshape(-1)
        count_array = pick(outputs, roles["count"], "count").reshape(-1)
        count = min(int(count_array[0]) if count_array.size else 0, len(scores), len(boxes), len(classes))
        yxyx = boxes[:count]
        xyxy = yxyx[:, [1, 0, 3, 2]]
        return xyxy, np.rint(classes[:count]).astype(np.int64), scores[:count].astype(np.float32)

    def _detection_output(self, outputs: Outputs) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """[1,1,N,7] rows (image_id, label, confidence, x_min, y_min, x_max, y_max); image_id -1 ends."""
        rows = pick(outputs, self.roles["detection_output"], "detection_output").reshape(-1, 7)
        end = np.flatnonzero(rows[:, 0] < 0)
        if end.size:
            rows = rows[: end[0]]
        return rows[:, 3:7], np.rint(rows[:, 1]).astype(np.int64), rows[:, 2].astype(np.float32)
