"""Image classification: one label per image, the best of the model's N classes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from ..errors import ModelMismatchError
from ..postprocess import ClassifyPostprocess
from .base import Detection, Outputs, pick

_DISTRIBUTION_TOLERANCE = 1e-3


class ClassifyDecoder:
    """A [1,N] vector (scores or probabilities) -> one Detection(labels[argmax], class_id, score,
    box = the whole image); none when the best score is below the threshold."""

    def __init__(self, spec: ClassifyPostprocess, key: str = "postprocess") -> None:
        self.spec = spec
        self.key = key
        self.roles: Mapping[str, Sequence[str]] = {"probabilities": spec.outputs.probabilities}

    def check_classes(self, count: int) -> None:
        """The model's class count must match the labels (call it with the output's last dimension
        when the server reports it; decode checks every response too)."""
        labels = len(self.spec.labels)
        if count != labels:
            raise ModelMismatchError(
                f"the model gives {count} classes but the profile lists {labels} labels",
                key=f"{self.key}.labels",
                fix=f"list one label per class of the model ({count}), in the model's order",
            )

    def decode(self, outputs: Outputs, frame_width: int, frame_height: int) -> list[Detection]:
        array = np.asarray(pick(outputs, self.roles["probabilities"], "probabilities"))
        if array.ndim == 0 or int(np.prod(array.shape[:-1], dtype=np.int64)) != 1:
            raise ModelMismatchError(
                f"expected one row of class scores [1,N], got shape {list(array.shape)}",
                key=f"{self.key}.outputs.probabilities",
                fix="point outputs.probabilities at the classifier's [1,N] output",
            )
        values = array.reshape(-1).astype(np.float64)
        self.check_classes(values.size)
        probabilities = softmax(values) if self._needs_softmax(values) else values
        best = int(np.argmax(probabilities))
        score = float(probabilities[best])
        if not np.isfinite(score) or score < self.spec.threshold:
            return []
        return [
            Detection(
                label=self.spec.labels[best],
                class_id=best,
                score=score,
                box=(0.0, 0.0, float(frame_width), float(frame_height)),
            )
        ]

    def _needs_softmax(self, values: np.ndarray) -> bool:
        if isinstance(self.spec.softmax, bool):
            return self.spec.softmax
        return not is_distribution(values)


def is_distribution(values: np.ndarray) -> bool:
    """Every value in 0..1 and the sum 1 (within 1e-3): already probabilities."""
    return bool(
        np.all(values >= 0.0)
        and np.all(values <= 1.0)
        and abs(float(values.sum()) - 1.0) <= _DISTRIBUTION_TOLERANCE
    )


def softmax(values: np.ndarray) -> np.ndarray:
    shifted = np.exp(values - np.max(values))
    return shifted / shifted.sum()
