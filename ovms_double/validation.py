"""Request checks shared by the KServe and TFS front ends, in the order RequestValidator makes them.

`label` is what the real validator's getCurrentlyValidatedTensorName() returns: the input name for
TFS, "input name: <name>" for KServe (the real messages therefore read "input name: input name: x").
"""

from __future__ import annotations

import numpy as np
import openvino as ov

from .servable import ModelVersion, TensorInfo
from .status import Code, ServingError
from .tensors import shape_text


def check_count(instance: ModelVersion, got: int) -> None:
    if got == 0 or got != len(instance.inputs):
        raise ServingError(Code.INVALID_NO_OF_INPUTS, f"Expected: {len(instance.inputs)}; Actual: {got}")


def check_negative(dims: list[int], label: str, kserve: bool) -> None:
    if any(d < 0 for d in dims):
        what = "Negative or zero dimension size" if kserve else "Negative dimension size"
        raise ServingError(
            Code.INVALID_SHAPE, f"{what} is not acceptable: {shape_text(dims)}; input name: {label}"
        )


def check_dims(info: TensorInfo, dims: list[int], label: str) -> None:
    """Dimension count, batch and shape checks."""
    expected = info.shape
    if expected.rank.get_length() != len(dims):
        raise ServingError(
            Code.INVALID_NO_OF_SHAPE_DIMENSIONS,
            f"Expected: {shape_text(info.dims())}; Actual: {shape_text(dims)}; input name: {label}",
        )
    if dims and not expected[0].compatible(ov.Dimension(dims[0])):
        raise ServingError(
            Code.INVALID_BATCH_SIZE, f"Expected: {info.dims()[0]}; Actual: {dims[0]}; input name: {label}"
        )
    if not expected.compatible(ov.PartialShape(dims)):
        raise ServingError(
            Code.INVALID_SHAPE,
            f"Expected: {shape_text(info.dims())}; Actual: {shape_text(dims)}; input name: {label}",
        )


def precision_error(info: TensorInfo, actual: str, label: str) -> ServingError:
    return ServingError(
        Code.INVALID_PRECISION, f"Expected: {info.precision.ovms_name}; Actual: {actual}; input name: {label}"
    )


def from_raw(buffer: bytes, dims: list[int], dtype: np.dtype, label: str) -> np.ndarray:
    """An input given as raw bytes (TFS tensor_content, KServe raw_input_contents): zero copy."""
    count = int(np.prod(dims)) if dims else 1
    if len(buffer) != count * dtype.itemsize:
        raise ServingError(
            Code.INVALID_CONTENT_SIZE,
            f"Expected: {count * dtype.itemsize} bytes; Actual: {len(buffer)} bytes; input name: {label}",
        )
    return np.frombuffer(buffer, dtype=dtype).reshape(dims)


def from_values(
    values: np.ndarray, dims: list[int], dtype: np.dtype, label: str, unit: str = ""
) -> np.ndarray:
    """An input given value by value (typed contents), as an array, when there are exactly enough.
    KServe's message counts in " values" (unit), TFS's in plain numbers."""
    count = int(np.prod(dims)) if dims else 1
    if len(values) != count:
        raise ServingError(
            Code.INVALID_VALUE_COUNT,
            f"Expected: {count}{unit}; Actual: {len(values)}{unit}; input name: {label}",
        )
    return np.asarray(values).astype(dtype, copy=False).reshape(dims)
