"""Frame -> what one request carries: a model input tensor, or one encoded image (JPEG/PNG).

A tensor: one resize, colour order, dtype/normalisation, layout, batch axis. An encoded image: one
resize to the model's input size (so the server need not resize), then JPEG or PNG of the BGR frame,
which is what OVMS decodes it back into."""

from __future__ import annotations

import math

import cv2
import numpy as np

from .profile import EncodingSpec, ModelSpec

Payload = np.ndarray | bytes


class Preprocessor:
    """Callable turning a BGR frame (any size) into the tensor or encoded image the profile describes."""

    def __init__(self, spec: ModelSpec, encoding: EncodingSpec | None = None) -> None:
        self.size = (spec.size.width, spec.size.height)
        self.to_rgb = spec.color == "rgb"
        self.as_float = spec.dtype == "float32"
        self.nchw = spec.layout == "NCHW"
        self.mean = np.asarray(spec.mean, dtype=np.float32)
        self.inv_std = (1.0 / np.asarray(spec.std, dtype=np.float32)).astype(np.float32)
        self.normalise = bool(np.any(self.mean != 0.0) or np.any(self.inv_std != 1.0))
        self.encoding = encoding.format if encoding is not None else "raw"
        self._extension, self._params = _encoder(encoding)
        self.fit_height = spec.resize == "fit_height"
        self.max_width = spec.max_width or spec.size.width

    @property
    def shape(self) -> tuple[int, ...]:
        """The shape of what one request sends: the tensor's, or [1] (one image) when encoded."""
        if self.encoding != "raw":
            return (1,)
        width, height = self.size
        return (1, 3, height, width) if self.nchw else (1, height, width, 3)

    def _resized(self, frame: np.ndarray) -> np.ndarray:
        width, height = self.size
        if self.fit_height:
            # the height fixed, the ratio kept (up to max_width); padded on the right later
            width = min(self.max_width, max(1, math.ceil(height * frame.shape[1] / max(1, frame.shape[0]))))
        if frame.shape[0] != height or frame.shape[1] != width:
            return cv2.resize(frame, (width, height), interpolation=cv2.INTER_LINEAR)
        return frame

    def _padded(self, image: np.ndarray) -> np.ndarray:
        """fit_height: zeros on the right up to the model's width (after normalisation, as PaddleOCR)."""
        missing = self.size[0] - image.shape[1]
        if not self.fit_height or missing <= 0:
            return image
        return np.pad(image, ((0, 0), (0, missing), (0, 0)))

    def __call__(self, frame: np.ndarray) -> Payload:
        image = self._resized(frame)
        if self.encoding != "raw":
            ok, encoded = cv2.imencode(self._extension, image, self._params)
            if not ok:
                raise ValueError(f"OpenCV could not encode a {image.shape} frame as {self.encoding}")
            return encoded.tobytes()
        if self.to_rgb:
            image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
        if self.as_float:
            image = image.astype(np.float32)  # the one copy a float model needs
            if self.normalise:
                image -= self.mean
                image *= self.inv_std
        image = self._padded(image)
        if self.nchw:
            image = image.transpose(2, 0, 1)
        return np.ascontiguousarray(image[np.newaxis])


def _encoder(encoding: EncodingSpec | None) -> tuple[str, list[int]]:
    if encoding is None or encoding.format == "raw":
        return "", []
    if encoding.format == "jpeg":
        return ".jpg", [cv2.IMWRITE_JPEG_QUALITY, encoding.jpeg_quality]
    return ".png", [cv2.IMWRITE_PNG_COMPRESSION, encoding.png_compression]
