"""What every decoder produces: detections with a label, a score and a box in frame pixels."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from ..errors import ModelMismatchError

Outputs = Mapping[str, np.ndarray] | np.ndarray


@dataclass(frozen=True, slots=True)
class Detection:
    label: str
    class_id: int
    score: float
    box: tuple[float, float, float, float]  # x_min, y_min, x_max, y_max in pixels of the original frame
    keypoints: tuple[tuple[float, float], ...] = ()

    def to_json(self) -> dict[str, Any]:
        record: dict[str, Any] = {
            "label": self.label,
            "class_id": self.class_id,
            "score": round(self.score, 4),
            "box": [round(v, 1) for v in self.box],
        }
        if self.keypoints:
            record["keypoints"] = [[round(x, 1), round(y, 1)] for x, y in self.keypoints]
        return record


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
