"""Crops of a frame for a later stage, and the way back: each crop is cut by one perspective warp from
the frame, and keeps the 3x3 matrix that maps its pixels to the frame's, so a stage's results on the
crop (boxes, rotated boxes, landmarks, points) are placed in the frame exactly, whatever padding,
rotation or mirroring the crop had."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import cv2
import numpy as np

from .decoders.base import Detection, Point

# Crops smaller than this on a side carry no information a model can use
MIN_SIDE = 2
# Never cut a crop larger than this on a side (a huge padded box of a 4K frame): it is scaled down
MAX_SIDE = 2048


@dataclass(frozen=True)
class Crop:
    image: np.ndarray  # BGR, upright, as the later stage sees it (before the model's resize)
    to_frame: np.ndarray  # 3x3: crop pixel (x, y, 1) -> frame pixel
    region: str | None = None  # the landmark region it was cut around

    @property
    def width(self) -> int:
        return int(self.image.shape[1])

    @property
    def height(self) -> int:
        return int(self.image.shape[0])


def _warp(frame: np.ndarray, corners: np.ndarray, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """Cut the quadrilateral `corners` (top-left, top-right, bottom-right, bottom-left in the frame)
    into a width x height image; return it and the matrix from its pixels to the frame's."""
    scale = min(1.0, MAX_SIDE / max(width, height))
    width, height = max(MIN_SIDE, round(width * scale)), max(MIN_SIDE, round(height * scale))
    target = np.array([[0, 0], [width, 0], [width, height], [0, height]], dtype=np.float32)
    to_crop = cv2.getPerspectiveTransform(corners.astype(np.float32), target)
    image = cv2.warpPerspective(
        frame, to_crop, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )
    return image, np.linalg.inv(to_crop)


def _rect_corners(x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=np.float32)


def box_crop(
    frame: np.ndarray,
    box: Sequence[float],
    padding: float = 0.0,
    square: bool = False,
    region: str | None = None,
) -> Crop | None:
    """The axis-aligned box grown by `padding` of its size on each side (made square around its centre
    first when asked); parts outside the frame repeat the frame's edge. None for a degenerate box."""
    x0, y0, x1, y1 = (float(v) for v in box)
    width, height = x1 - x0, y1 - y0
    if square:
        side = max(width, height)
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        x0, x1, y0, y1 = cx - side / 2, cx + side / 2, cy - side / 2, cy + side / 2
        width = height = side
    x0, x1 = x0 - width * padding, x1 + width * padding
    y0, y1 = y0 - height * padding, y1 + height * padding
    if not all(map(math.isfinite, (x0, y0, x1, y1))):
        return None
    out_w, out_h = round(x1 - x0), round(y1 - y0)
    if out_w < MIN_SIDE or out_h < MIN_SIDE:
        return None
    image, to_frame = _warp(frame, _rect_corners(x0, y0, x1, y1), out_w, out_h)
    return Crop(image, to_frame, region)


def quad_crop(frame: np.ndarray, quad: Sequence[Point], padding: float = 0.0) -> Crop | None:
    """A rotated box (4 corners clockwise from the top-left of its content) warped upright; a box
    standing on its side (1.5 times as tall as wide) is turned to read left to right, as PaddleOCR
    does with vertical text lines."""
    corners = np.asarray(quad, dtype=np.float32).reshape(4, 2)
    if not np.all(np.isfinite(corners)) or not _convex(corners):
        return None
    width = max(np.linalg.norm(corners[0] - corners[1]), np.linalg.norm(corners[2] - corners[3]))
    height = max(np.linalg.norm(corners[0] - corners[3]), np.linalg.norm(corners[1] - corners[2]))
    if padding:
        centre = corners.mean(axis=0)
        along = (corners[1] - corners[0]) / max(float(np.linalg.norm(corners[1] - corners[0])), 1e-6)
        down = (corners[3] - corners[0]) / max(float(np.linalg.norm(corners[3] - corners[0])), 1e-6)
        half_w, half_h = width * (0.5 + padding), height * (0.5 + padding)
        corners = np.array(
            [
                centre - along * half_w - down * half_h,
                centre + along * half_w - down * half_h,
                centre + along * half_w + down * half_h,
                centre - along * half_w + down * half_h,
            ],
            dtype=np.float32,
        )
        width, height = width * (1 + 2 * padding), height * (1 + 2 * padding)
    if round(width) < MIN_SIDE or round(height) < MIN_SIDE:
        return None
    image, to_frame = _warp(frame, corners, round(width), round(height))
    crop = Crop(image, to_frame)
    if crop.height >= 1.5 * crop.width:
        crop = rotated(crop, 270)
    return crop


def _convex(corners: np.ndarray) -> bool:
    """A quadrilateral a warp can map to a rectangle: convex, its corners in one turning direction and
    an area of at least a few pixels (three corners on a line would send points far away)."""
    turns = []
    for i in range(4):
        a, b, c = corners[i], corners[(i + 1) % 4], corners[(i + 2) % 4]
        turns.append(float((b[0] - a[0]) * (c[1] - b[1]) - (b[1] - a[1]) * (c[0] - b[0])))
    area = abs(float(cv2.contourArea(corners)))
    return area >= MIN_SIDE * MIN_SIDE and (all(t > 0 for t in turns) or all(t < 0 for t in turns))


def points_crop(
    frame: np.ndarray,
    points: Sequence[Point],
    indices: Sequence[int],
    padding: float,
    region: str,
) -> Crop | None:
    """A square crop around some landmark points (an eye from its two corners): their bounding box,
    made square and grown by `padding` of its side on each side."""
    chosen = np.asarray([points[i] for i in indices], dtype=np.float32)
    if not np.all(np.isfinite(chosen)):
        return None
    x0, y0 = chosen.min(axis=0)
    x1, y1 = chosen.max(axis=0)
    return box_crop(frame, (x0, y0, x1, y1), padding, square=True, region=region)


def rotated(crop: Crop, degrees: int) -> Crop:
    """The crop turned clockwise by 90, 180 or 270 degrees."""
    turns = (degrees // 90) % 4
    if turns == 0:
        return crop
    height, width = crop.height, crop.width
    code = {1: cv2.ROTATE_90_CLOCKWISE, 2: cv2.ROTATE_180, 3: cv2.ROTATE_90_COUNTERCLOCKWISE}[turns]
    image = cv2.rotate(crop.image, code)
    # new pixel -> old pixel
    back = {
        1: np.array([[0, 1, 0], [-1, 0, height], [0, 0, 1]], dtype=np.float64),
        2: np.array([[-1, 0, width], [0, -1, height], [0, 0, 1]], dtype=np.float64),
        3: np.array([[0, -1, width], [1, 0, 0], [0, 0, 1]], dtype=np.float64),
    }[turns]
    return replace(crop, image=image, to_frame=crop.to_frame @ back)


def mirrored(crop: Crop) -> Crop:
    """The crop flipped left-right (a right eye for a model of left eyes)."""
    back = np.array([[-1, 0, crop.width], [0, 1, 0], [0, 0, 1]], dtype=np.float64)
    return replace(crop, image=np.ascontiguousarray(crop.image[:, ::-1]), to_frame=crop.to_frame @ back)


def _map(matrix: np.ndarray, points: Sequence[Point]) -> tuple[Point, ...]:
    if not points:
        return ()
    array = np.asarray(points, dtype=np.float64).reshape(-1, 1, 2)
    mapped = cv2.perspectiveTransform(array, matrix).reshape(-1, 2)
    return tuple((float(x), float(y)) for x, y in mapped)


def to_frame(detection: Detection, crop: Crop) -> Detection:
    """A result on the crop placed in the frame: every point mapped; the box becomes the bounding box
    of its mapped corners; a quad keeps its corners' order from the reader's top-left."""
    matrix = crop.to_frame
    x0, y0, x1, y1 = detection.box
    corners = _map(matrix, ((x0, y0), (x1, y0), (x1, y1), (x0, y1)))
    xs, ys = [p[0] for p in corners], [p[1] for p in corners]
    names = [name for name, _ in detection.named_points]
    named = _map(matrix, [point for _, point in detection.named_points])
    return replace(
        detection,
        box=(min(xs), min(ys), max(xs), max(ys)),
        keypoints=_map(matrix, detection.keypoints),
        quad=_map(matrix, detection.quad),
        points=_map(matrix, detection.points),
        named_points=tuple(zip(names, named, strict=True)),
    )
