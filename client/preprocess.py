"""Frame -> model input tensor: one resize, colour order, dtype/normalisation, layout, batch axis."""

from __future__ import annotations

import cv2
import numpy as np

from .profile import ModelSpec


class Preprocessor:
    """Callable turning a BGR frame (any size) into the contiguous tensor the profile describes."""

    def __init__(self, spec: ModelSpec) -> None:
        self.size = (spec.size.width, spec.size.height)
        self.to_rgb = spec.color == "rgb"
        self.as_float = spec.dtype == "float32"
        self.nchw = spec.layout == "NCHW"
        self.mean = np.asarray(spec.mean, dtype=np.float32)
        self.inv_std = (1.0 / np.asarray(spec.std, dtype=np.float32)).astype(np.float32)
        self.normalise = bool(np.any(self.mean != 0.0) or np.any(self.inv_std != 1.0))

    @property
    def shape(self) -> tuple[int, int, int, int]:
        width, height = self.size
        return (1, 3, height, width) if self.nchw else (1, height, width, 3)

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        width, height = self.size
        image = frame
        if image.shape[0] != height or image.shape[1] != width:
            image = cv2.resize(image, self.size, interpolation=cv2.INTER_LINEAR)
        if self.to_rgb:
            image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
        if self.as_float:
            image = image.astype(np.float32)  # the one copy a float model needs
            if self.normalise:
                image -= self.mean
                image *= self.inv_std
        if self.nchw:
            image = image.transpose(2, 0, 1)
        return np.ascontiguousarray(image[np.newaxis])
