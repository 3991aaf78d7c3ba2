"""DB (Differentiable Binarization) text detection, as PP-OCR post-processes it: the probability map
to rotated text boxes ("fast" box scores; the unclip offset done on the minimum-area rectangle, which
is what PP-OCR's round-joined polygon offset gives for a rectangle, so no pyclipper)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import cv2
import numpy as np

from ..errors import ModelMismatchError
from ..postprocess import DbPostprocess
from .base import Detection, Outputs, Point, pick

MAX_CANDIDATES = 1000  # contours looked at per map (PP-OCR's max_candidates)
SAME_LINE_PX = 10.0  # boxes whose tops differ by less are on one line (PP-OCR's sorted_boxes)


class DbDecoder:
    """`resize` is how the image became the model input: `stretch` (the map covers the whole image) or
    `fit_height` (the image scaled to the input height, keeping its ratio, padded on the right)."""

    def __init__(self, spec: DbPostprocess, resize: str = "stretch", key: str = "postprocess") -> None:
        if resize not in ("stretch", "fit_height"):
            raise ValueError(f"unknown resize mode {resize!r}")
        self.spec = spec
        self.resize = resize
        self.key = key
        self.roles: Mapping[str, Sequence[str]] = {"probability": spec.outputs.probability}
        self.kernel = np.ones((2, 2), np.uint8) if spec.dilate else None

    def decode(self, outputs: Outputs, frame_width: int, frame_height: int) -> list[Detection]:
        array = pick(outputs, self.roles["probability"], "probability")
        prob = probability_map(array, self.key)
        map_h, map_w = prob.shape
        if map_h == 0 or map_w == 0 or frame_width <= 0 or frame_height <= 0:
            return []
        scale_x, scale_y = frame_width / map_w, frame_height / map_h
        if self.resize == "fit_height":  # the image covers the left part of the map, as high as it
            scale_x = frame_width / min(float(map_w), map_h * frame_width / frame_height)
        candidates = self.boxes(prob)
        candidates.sort(key=lambda item: -item[1])
        kept = candidates[: self.spec.max_detections]
        results = []
        for quad, score in kept:
            corners = quad * np.array([scale_x, scale_y], np.float64)
            corners[:, 0] = np.clip(corners[:, 0], 0.0, frame_width)
            corners[:, 1] = np.clip(corners[:, 1], 0.0, frame_height)
            points: tuple[Point, ...] = tuple((float(x), float(y)) for x, y in corners)
            box = (
                float(corners[:, 0].min()),
                float(corners[:, 1].min()),
                float(corners[:, 0].max()),
                float(corners[:, 1].max()),
            )
            results.append(Detection(label=self.spec.label, class_id=0, score=score, box=box, quad=points))
        return reading_order(results)

    def boxes(self, prob: np.ndarray) -> list[tuple[np.ndarray, float]]:
        """(4 corners in map pixels clockwise from the top-left, score) of every text region."""
        spec = self.spec
        bitmap = (prob > spec.threshold).astype(np.uint8)
        if self.kernel is not None:
            bitmap = cv2.dilate(bitmap, self.kernel)
        contours, _ = cv2.findContours(bitmap, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
        found: list[tuple[np.ndarray, float]] = []
        for contour in contours[:MAX_CANDIDATES]:
            rect = cv2.minAreaRect(contour)
            if min(rect[1]) < spec.min_size:
                continue
            score = box_score_fast(prob, ordered_corners(rect))
            if score < spec.box_threshold:
                continue
            grown = unclip(rect, spec.unclip_ratio)
            if min(grown[1]) < spec.min_size + 2:
                continue
            found.append((ordered_corners(grown), score))
        return found


def probability_map(array: np.ndarray, key: str = "postprocess") -> np.ndarray:
    """[1,1,H,W], [1,H,W] or [H,W] -> [H,W] float32; anything else (a batch, several maps) is an error."""
    array = np.asarray(array)
    if array.ndim < 2 or int(np.prod(array.shape[:-2], dtype=np.int64)) != 1:
        raise ModelMismatchError(
            f"expected one probability map [1,1,H,W] from the text detector, got shape {list(array.shape)}",
            key=f"{key}.outputs.probability",
            fix="point outputs.probability at the DB model's probability map (type db)",
        )
    return array.reshape(array.shape[-2:]).astype(np.float32, copy=False)


def ordered_corners(rect: tuple[tuple[float, float], tuple[float, float], float]) -> np.ndarray:
    """A rotated rectangle's corners [4,2]: top-left, top-right, bottom-right, bottom-left (PaddleOCR's
    get_mini_boxes: the two leftmost corners are the left side, the upper of each side comes first)."""
    points = sorted(cv2.boxPoints(rect).tolist(), key=lambda p: p[0])
    left = sorted(points[:2], key=lambda p: p[1])
    right = sorted(points[2:], key=lambda p: p[1])
    return np.array([left[0], right[0], right[1], left[1]], np.float64)


def box_score_fast(prob: np.ndarray, corners: np.ndarray) -> float:
    """Mean probability inside the quad (PP-OCR's "fast" score: the filled quad as a mask)."""
    h, w = prob.shape
    x_min = int(np.clip(np.floor(corners[:, 0].min()), 0, w - 1))
    x_max = int(np.clip(np.ceil(corners[:, 0].max()), 0, w - 1))
    y_min = int(np.clip(np.floor(corners[:, 1].min()), 0, h - 1))
    y_max = int(np.clip(np.ceil(corners[:, 1].max()), 0, h - 1))
    mask = np.zeros((y_max - y_min + 1, x_max - x_min + 1), np.uint8)
    shifted = corners - np.array([x_min, y_min], np.float64)
    cv2.fillPoly(mask, [shifted.astype(np.int32)], 1)
    return float(cv2.mean(prob[y_min : y_max + 1, x_min : x_max + 1], mask)[0])


def unclip(
    rect: tuple[tuple[float, float], tuple[float, float], float], ratio: float
) -> tuple[tuple[float, float], tuple[float, float], float]:
    """The rectangle grown by area * ratio / perimeter on every side."""
    (cx, cy), (w, h), angle = rect
    perimeter = 2.0 * (w + h)
    distance = w * h * ratio / perimeter if perimeter > 0 else 0.0
    return (cx, cy), (w + 2.0 * distance, h + 2.0 * distance), angle


def reading_order(results: list[Detection]) -> list[Detection]:
    """Top to bottom, left to right on a line (tops within SAME_LINE_PX), like PP-OCR's sorted_boxes."""
    ordered = sorted(results, key=lambda d: (d.quad[0][1], d.quad[0][0]))
    for i in range(len(ordered) - 1):
        for j in range(i, -1, -1):
            a, b = ordered[j], ordered[j + 1]
            if abs(b.quad[0][1] - a.quad[0][1]) < SAME_LINE_PX and b.quad[0][0] < a.quad[0][0]:
                ordered[j], ordered[j + 1] = b, a
            else:
                break
    return ordered
