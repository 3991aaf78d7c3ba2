"""What every decoder produces: detections with a label, a score and a box in frame pixels."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from ..errors import ModelMismatchError

Outputs = Mapping[str, np.ndarray] | np.ndarray


Point = tuple[float, float]


@dataclass(frozen=True, slots=True)
class Detection:
    """One result of a stage, in pixels of the image the decoder was given (the frame, or a crop:
    the cascade maps a crop's results into the frame, every geometric field included)."""

    label: str
    class_id: int
    score: float
    box: tuple[float, float, float, float]  # x_min, y_min, x_max, y_max
    keypoints: tuple[Point, ...] = ()  # a detector's few points (BlazeFace's eyes, nose, ...)
    quad: tuple[Point, ...] = ()  # a rotated box: 4 corners, clockwise from the top-left of its text
    points: tuple[Point, ...] = ()  # landmarks (468 of a face mesh, 71 of an eye): JSON `landmarks`
    named_points: tuple[tuple[str, Point], ...] = ()  # single points, each a JSON key ("iris")
    text: str | None = None  # OCR text, a barcode's content
    fields: tuple[tuple[str, Any], ...] = ()  # more JSON keys, not geometry ("format": "EAN-13")

    def to_json(self) -> dict[str, Any]:
        record: dict[str, Any] = {
            "label": self.label,
            "class_id": self.class_id,
            "score": round(self.score, 4),
            "box": [round(v, 1) for v in self.box],
        }
        if self.text is not None:
            record["text"] = self.text
        for key, value in self.fields:
            record[key] = value
        if self.keypoints:
            record["keypoints"] = _rounded(self.keypoints)
        if self.quad:
            record["quad"] = _rounded(self.quad)
        if self.points:
            record["landmarks"] = _rounded(self.points)
        for key, (x, y) in self.named_points:
            record[key] = [round(x, 1), round(y, 1)]
        return record


def finite(detection: Detection) -> bool:
    """Every number of a result is finite: a model's NaN or inf (an fp16 overflow) makes a result
    that can be neither placed, cropped, drawn nor written as JSON."""
    values = [
        detection.score,
        *detection.box,
        *(v for point in (*detection.keypoints, *detection.quad, *detection.points) for v in point),
        *(v for _, point in detection.named_points for v in point),
    ]
    return bool(np.all(np.isfinite(np.asarray(values, dtype=np.float64))))


def _rounded(points: tuple[Point, ...]) -> list[list[float]]:
    return [[round(x, 1), round(y, 1)] for x, y in points]


class Decoder(Protocol):
    """Turns one response of the model into detections for a frame of the given size."""

    roles: Mapping[str, Sequence[str]]  # role -> accepted output tensor names

    def decode(self, outputs: Outputs, frame_width: int, frame_height: int) -> list[Detection]: ...


def pick(outputs: Outputs, names: Sequence[str], role: str) -> np.ndarray:
    """The output tensor for a role, by the first of its accepted names present in the response."""
    if isinstance(outputs, np.ndarray):
        return outputs
    for name in names:
        array = outputs.get(name)
        if array is not None:
            return array
    raise ModelMismatchError(
        f"the response has no output for {role!r}: expected one of {list(names)}, "
        f"the server returned {sorted(outputs)}",
        key=f"postprocess.outputs.{role}",
        fix="set postprocess.outputs in the profile to the server's output names",
    )


def check_outputs(decoder: Decoder, available: Mapping[str, Any], model: str) -> dict[str, str]:
    """Map each role to the output name the server reports; a missing one is a clear error."""
    resolved: dict[str, str] = {}
    for role, names in decoder.roles.items():
        found = next((n for n in names if n in available), None)
        if found is None:
            raise ModelMismatchError(
                f"model {model!r} has no output for {role!r}: the profile accepts {list(names)}, "
                f"the server reports {sorted(available)}",
                key=f"postprocess.outputs.{role}",
                fix="set postprocess.outputs in the profile to the server's output names",
            )
        resolved[role] = found
    return resolved


def to_pixels(boxes: np.ndarray, frame_width: int, frame_height: int) -> np.ndarray:
    """Normalised [x_min, y_min, x_max, y_max] rows -> pixels, clipped to the frame."""
    scale = np.array([frame_width, frame_height, frame_width, frame_height], dtype=np.float32)
    pixels = boxes.astype(np.float32, copy=False) * scale
    np.clip(pixels, 0.0, scale, out=pixels)
    return pixels
