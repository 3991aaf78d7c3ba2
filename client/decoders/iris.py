"""MediaPipe iris_landmark: 71 eye contour and brow points and 5 iris points (centre first), in the
model's input pixels -> one result in pixels of the eye crop the stage was given."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ..postprocess import EYE_POINTS, IrisPostprocess
from .base import Detection, Outputs, pick
from .landmarks import InputGeometry, bounding_box, point_rows, points_tuple

IRIS_POINTS = 5


class IrisDecoder:
    """One Detection(label, score 1.0 (the model gives none), points = the 71 eye points, keypoints =
    the 5 iris points, named_points (("iris", centre),), box = the 5 iris points' bounding box)."""

    def __init__(
        self,
        spec: IrisPostprocess,
        geometry: InputGeometry | None = None,
        key: str = "postprocess",
    ) -> None:
        self.spec = spec
        self.geometry = geometry or InputGeometry(64, 64)
        self.key = key
        self.roles: Mapping[str, Sequence[str]] = {
            "contours": spec.outputs.contours,
            "iris": spec.outputs.iris,
        }

    def decode(self, outputs: Outputs, frame_width: int, frame_height: int) -> list[Detection]:
        fix = "point outputs.contours and outputs.iris at iris_landmark's outputs"
        eye = point_rows(
            pick(outputs, self.roles["contours"], "contours"),
            EYE_POINTS,
            "contours",
            f"{self.key}.outputs.contours",
            fix,
        )
        iris = point_rows(
            pick(outputs, self.roles["iris"], "iris"), IRIS_POINTS, "iris", f"{self.key}.outputs.iris", fix
        )
        eye_px = self.geometry.to_image(eye, frame_width, frame_height)
        iris_px = self.geometry.to_image(iris, frame_width, frame_height)
        centre = (float(iris_px[0, 0]), float(iris_px[0, 1]))
        return [
            Detection(
                label=self.spec.label,
                class_id=0,
                score=1.0,
                box=bounding_box(iris_px, frame_width, frame_height),
                keypoints=points_tuple(iris_px),
                points=points_tuple(eye_px),
                named_points=(("iris", centre),),
            )
        ]
