"""BlazeFace (MediaPipe face detection) decoding: anchors, sigmoid scores, weighted or plain NMS."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from ..profile import BlazefacePostprocess
from .anchors import PRESETS, generate_anchors
from .base import Detection, Outputs, pick, to_pixels

_SCORE_CLIP = 100.0  # MediaPipe's score_clipping_thresh
_KEYPOINTS = 6


class BlazefaceDecoder:
    def __init__(self, spec: BlazefacePostprocess) -> None:
        self.spec = spec
        options = PRESETS[spec.anchors]
        self.anchors = generate_anchors(options)
        # Regressor values are in input pixels: x/y offsets and sizes are divided by the input size.
        self.scale = np.array([options.input_width, options.input_height], dtype=np.float32)
        self.roles: Mapping[str, Sequence[str]] = {
            "regressors": spec.outputs.regressors,
            "classificators": spec.outputs.classificators,
        }

    def decode(self, outputs: Outputs, frame_width: int, frame_height: int) -> list[Detection]:
        raw_boxes = pick(outputs, self.roles["regressors"], "regressors")
        raw_scores = pick(outputs, self.roles["classificators"], "classificators")
        boxes, keypoints, scores = self.decode_normalised(raw_boxes, raw_scores)
        pixels = to_pixels(boxes, frame_width, frame_height)
        points = keypoints * np.array([frame_width, frame_height], dtype=np.float32)
        return [
            Detection(
                label=self.spec.label,
                class_id=0,
                score=float(score),
                box=(float(b[0]), float(b[1]), float(b[2]), float(b[3])),
                keypoints=tuple((float(x), float(y)) for x, y in kp),
            )
            for b, kp, score in zip(pixels, points, scores, strict=True)
        ]

    def decode_normalised(
        self, raw_boxes: np.ndarray, raw_scores: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(boxes [K,4] x_min,y_min,x_max,y_max; keypoints [K,6,2]; scores [K]), normalised, after NMS."""
        anchors = self.anchors
        regress = raw_boxes.reshape(len(anchors), -1)
        logits = np.clip(raw_scores.reshape(len(anchors)).astype(np.float64), -_SCORE_CLIP, _SCORE_CLIP)
        scores = 1.0 / (1.0 + np.exp(-logits))
        keep = np.flatnonzero(scores >= self.spec.threshold)
        if keep.size == 0:
            return _stack([], [], [])
        regress, anchor, scores = regress[keep], anchors[keep], scores[keep].astype(np.float32)
        anchor_wh = anchor[:, 2:4]
        centers = regress[:, 0:2] / self.scale * anchor_wh + anchor[:, 0:2]
        sizes = regress[:, 2:4] / self.scale * anchor_wh
        boxes = np.concatenate([centers - sizes / 2, centers + sizes / 2], axis=1)
        points = regress[:, 4 : 4 + 2 * _KEYPOINTS].reshape(-1, _KEYPOINTS, 2)
        points = points / self.scale * anchor_wh[:, None, :] + anchor[:, None, 0:2]
        if self.spec.nms == "weighted":
            return weighted_nms(boxes, points, scores, self.spec.iou_threshold, self.spec.max_detections)
        return plain_nms(boxes, points, scores, self.spec.iou_threshold, self.spec.max_detections)


def iou(box: np.ndarray, others: np.ndarray) -> np.ndarray:
    """Intersection over union of one [4] box against [K,4] boxes (x_min, y_min, x_max, y_max)."""
    top_left = np.maximum(box[:2], others[:, :2])
    bottom_right = np.minimum(box[2:], others[:, 2:])
    inter = np.prod(np.clip(bottom_right - top_left, 0.0, None), axis=1)
    area = np.prod(np.clip(box[2:] - box[:2], 0.0, None))
    areas = np.prod(np.clip(others[:, 2:] - others[:, :2], 0.0, None), axis=1)
    union = area + areas - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def weighted_nms(
    boxes: np.ndarray, points: np.ndarray, scores: np.ndarray, threshold: float, limit: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """MediaPipe's WEIGHTED NMS: each cluster becomes the score-weighted mean of its members,
    scored by its best member."""
    order = np.argsort(-scores, kind="stable")
    out_boxes, out_points, out_scores = [], [], []
    while order.size and len(out_scores) < limit:
        overlaps = iou(boxes[order[0]], boxes[order])
        members = order[overlaps > threshold]
        members = members if members.size else order[:1]
        weights = scores[members][:, None]
        total = weights.sum()
        out_boxes.append((boxes[members] * weights).sum(axis=0) / total)
        out_points.append((points[members] * weights[:, :, None]).sum(axis=0) / total)
        out_scores.append(scores[order[0]])
        order = order[overlaps <= threshold]
    return _stack(out_boxes, out_points, out_scores)


def plain_nms(
    boxes: np.ndarray, points: np.ndarray, scores: np.ndarray, threshold: float, limit: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Classic NMS: keep the best box, drop those overlapping it by more than the threshold."""
    order = np.argsort(-scores, kind="stable")
    kept: list[int] = []
    while order.size and len(kept) < limit:
        best = order[0]
        kept.append(int(best))
        overlaps = iou(boxes[best], boxes[order])
        order = order[overlaps <= threshold]
    return _stack([boxes[i] for i in kept], [points[i] for i in kept], [scores[i] for i in kept])


def _stack(
    boxes: list[np.ndarray], points: list[np.ndarray], scores: list[np.floating]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if not scores:
        return np.zeros((0, 4), np.float32), np.zeros((0, _KEYPOINTS, 2), np.float32), np.zeros(0, np.float32)
    return (
        np.asarray(boxes, np.float32),
        np.asarray(points, np.float32),
        np.asarray(scores, np.float32),
    )
