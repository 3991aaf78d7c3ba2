"""Binary (JPEG/PNG) inputs of KServe requests: checks, decoding and resizing as OVMS makes them.

From model_server v2026.3 (predict_request_validation_utils.hpp, kfs_frontend/kfs_utils.cpp,
tensor_conversion*.{hpp,cpp}): an input sent with datatype BYTES into a model input of rank 4 is a
batch of encoded images, one per element of shape [N], given in `contents.bytes_contents` or in
`raw_input_contents` with a 4-byte little-endian length before each image. The server decodes each
with OpenCV (so the model receives **BGR**), converts it to the input's precision without scaling,
resizes it to the input's height and width when the layout allows it, and stacks an NHWC tensor.
"""

from __future__ import annotations

import struct

import cv2
import numpy as np
import openvino as ov

from .servable import TensorInfo
from .status import Code, ServingError

_LENGTH = struct.Struct("<I")
# numpy dtypes OpenCV can convert an image to (getMatTypeFromTensorPrecision)
_CONVERTIBLE = {"FP32", "FP64", "FP16", "I16", "U8", "I8", "U16", "I32"}


def split_raw(buffer: bytes) -> list[bytes]:
    """The images of a raw_input_contents buffer: each after its 4-byte little-endian length."""
    images: list[bytes] = []
    offset = 0
    while offset + _LENGTH.size <= len(buffer):
        (size,) = _LENGTH.unpack_from(buffer, offset)
        start = offset + _LENGTH.size
        if start + size > len(buffer):
            raise ServingError(Code.INVALID_INPUT_FORMAT)
        images.append(buffer[start : start + size])
        offset = start + size
    if offset != len(buffer):
        raise ServingError(Code.INVALID_INPUT_FORMAT)
    return images


def is_image_input(info: TensorInfo) -> bool:
    """The IMAGE processing hint: a model input of rank 4."""
    return info.shape.rank.is_static and info.shape.rank.get_length() == 4


def validate_request(info: TensorInfo, dims: list[int], images: list[bytes], label: str, raw: bool) -> None:
    """The request-level checks (RequestValidator, IMAGE branch): shape [N], N images, model batch."""
    if not is_image_input(info):
        raise ServingError(Code.NOT_IMPLEMENTED)
    if len(dims) != 1:
        raise ServingError(
            Code.INVALID_NO_OF_SHAPE_DIMENSIONS,
            f"Expected number of input shape dimensions: 1; Actual: {len(dims)}; input name: {label}",
        )
    batch = _batch_dim(info)
    if batch is None:
        raise ServingError(Code.INVALID_BATCH_SIZE, f"Batch not present in input name: {label}")
    if dims[0] != len(images):
        raise ServingError(Code.INVALID_BATCH_SIZE)
    if not batch.compatible(ov.Dimension(dims[0])):
        # the real message counts bytes_contents, which is 0 when the images come in raw_input_contents
        actual = 0 if raw else len(images)
        raise ServingError(
            Code.INVALID_BATCH_SIZE, f"Expected: {_dim_text(batch)}; Actual: {actual}; input name: {label}"
        )


def to_tensor(info: TensorInfo, images: list[bytes], raw: bool) -> np.ndarray:
    """Decode, convert and stack the images into the input's [N,H,W,C] tensor (conversion step)."""
    if not _layout_accepts_nhwc(info.layout):
        raise ServingError(Code.UNSUPPORTED_LAYOUT)
    batch = _batch_dim(info)
    if batch is not None and images and not batch.compatible(ov.Dimension(len(images))):
        raise ServingError(Code.INVALID_BATCH_SIZE)
    if (raw and not images) or (not raw and any(len(image) == 0 for image in images)):
        raise ServingError(Code.BYTES_CONTENTS_EMPTY)
    height, width, channels = (info.shape[i] for i in (1, 2, 3))
    # isResizeSupported: no "any" dimension, and a layout of exactly NHWC, N?HWC or "..." (not N...)
    resize_ok = not any(_is_any(d) for d in info.shape) and info.layout in ("NHWC", "N?HWC", "...")
    decoded: list[np.ndarray] = []
    target: tuple[int, int] | None = None
    for data in images:
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
        if image is None:
            raise ServingError(Code.IMAGE_PARSING_FAILED)
        if image.ndim == 2:
            image = image[:, :, np.newaxis]
        if decoded and not resize_ok and image.shape[:2] != decoded[0].shape[:2]:
            raise ServingError(Code.BINARY_IMAGES_RESOLUTION_MISMATCH)
        if channels.is_static:
            expected_channels: int | None = channels.get_length()
        else:
            expected_channels = decoded[0].shape[2] if decoded else None
        if expected_channels is not None and image.shape[2] != expected_channels:
            raise ServingError(Code.INVALID_NO_OF_CHANNELS)
        if target is None:
            target = (_target(height, image.shape[0]), _target(width, image.shape[1]))
        if image.dtype != info.precision.numpy:
            if info.precision.ovms_name not in _CONVERTIBLE:
                raise ServingError(Code.INVALID_PRECISION)
            image = image.astype(info.precision.numpy)
        if image.shape[:2] != target:
            if not resize_ok:
                raise ServingError(Code.INVALID_SHAPE)
            image = cv2.resize(image, (target[1], target[0]), interpolation=cv2.INTER_LINEAR)
            if image.ndim == 2:
                image = image[:, :, np.newaxis]
        decoded.append(image)
    return np.ascontiguousarray(np.stack(decoded))


def _batch_dim(info: TensorInfo) -> ov.Dimension | None:
    """The batch dimension from the layout's N (none when the layout has no N)."""
    index = info.layout.find("N")
    return info.shape[index] if index >= 0 else None


def _dim_text(dim: ov.Dimension) -> str:
    return str(dim.get_length()) if dim.is_static else str(dim)


def _layout_accepts_nhwc(layout: str) -> bool:
    """Whether the layout intersects N...HWC for a rank-4 input (e.g. N..., NHWC; not NCHW)."""
    letters = _expand(layout, 4)
    return letters is not None and all(a in ("?", b) for a, b in zip(letters, "NHWC", strict=True))


def _expand(layout: str, rank: int) -> str | None:
    if "..." not in layout:
        return layout if len(layout) == rank else None
    head, _, tail = layout.partition("...")
    fill = rank - len(head) - len(tail)
    return head + "?" * fill + tail if fill >= 0 else None


def _is_any(dim: ov.Dimension) -> bool:
    return dim.is_dynamic and dim.get_max_length() < 0 and dim.get_min_length() <= 0


def _target(dim: ov.Dimension, actual: int) -> int:
    """The resize target of one dimension (updateTargetResolution): static value, the image's own
    size for an any-dimension, or the image's size clamped into a range."""
    if dim.is_static:
        return dim.get_length()
    low, high = dim.get_min_length(), dim.get_max_length()
    if high < 0:
        return actual
    return min(max(actual, low), high)
