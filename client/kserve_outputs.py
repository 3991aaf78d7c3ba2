"""The outputs of a KServe v2 gRPC inference response, in either form the protocol allows.

A server may put each output's data in `raw_output_contents` (one entry per output, in the order of
`outputs`: little-endian, row-major; a BYTES element is a 4-byte little-endian length and its bytes) —
what OVMS and Triton do — or in the typed `contents` field of its datatype (`fp32_contents`,
`int_contents`, ...) — what the `kserve` SDK's model server sends for outputs its model gives as lists
(`InferOutput.set_data_from_numpy(..., binary_data=False)`).
tritonclient's `InferResult.as_numpy` reads only the raw form: a typed answer became an empty array
that could not be reshaped. `read_outputs` reads both, for every datatype below, and a response it
cannot read raises `UnreadableResponse` — an error of that frame from a server that is up.

FP16 and BF16 come only raw (the protocol has no typed field for them); BF16 is widened to float32
(exactly: numpy has no bfloat16). INT8/INT16 travel typed in `int_contents` and UINT8/UINT16 in
`uint_contents`; a value that does not fit the datatype is refused, not wrapped around.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from tritonclient.grpc.service_pb2 import ModelInferResponse

from .errors import UnreadableResponse

Unreadable = Callable[[str], UnreadableResponse]


@dataclass(frozen=True, slots=True)
class _Kind:
    raw: np.dtype | None  # the element as raw_output_contents holds it; None: BYTES
    field: str | None  # the typed contents field; None: only raw (FP16, BF16)
    result: np.dtype  # the array the decoders get


def _kind(raw: str | None, field: str | None, result: str | type) -> _Kind:
    return _Kind(np.dtype(raw) if raw else None, field, np.dtype(result))


# each typed field's protobuf element type: read into it first, then narrowed to the datatype
FIELD_DTYPES = {
    "bool_contents": np.dtype(np.bool_),
    "int_contents": np.dtype(np.int32),
    "int64_contents": np.dtype(np.int64),
    "uint_contents": np.dtype(np.uint32),
    "uint64_contents": np.dtype(np.uint64),
    "fp32_contents": np.dtype(np.float32),
    "fp64_contents": np.dtype(np.float64),
}


KINDS: dict[str, _Kind] = {
    "BOOL": _kind("?", "bool_contents", np.bool_),
    "UINT8": _kind("u1", "uint_contents", np.uint8),
    "UINT16": _kind("<u2", "uint_contents", np.uint16),
    "UINT32": _kind("<u4", "uint_contents", np.uint32),
    "UINT64": _kind("<u8", "uint64_contents", np.uint64),
    "INT8": _kind("i1", "int_contents", np.int8),
    "INT16": _kind("<i2", "int_contents", np.int16),
    "INT32": _kind("<i4", "int_contents", np.int32),
    "INT64": _kind("<i8", "int64_contents", np.int64),
    "FP16": _kind("<f2", None, np.float16),
    "BF16": _kind("<u2", None, np.float32),
    "FP32": _kind("<f4", "fp32_contents", np.float32),
    "FP64": _kind("<f8", "fp64_contents", np.float64),
    "BYTES": _kind(None, "bytes_contents", np.object_),
}
DATATYPES = tuple(KINDS)
_LENGTH = struct.Struct("<I")


def read_outputs(
    response: ModelInferResponse, model: str, names: Sequence[str] | None = None
) -> dict[str, np.ndarray]:
    """Each output of `response` (only `names`, when given) as an array of the output's shape.

    `response` is the protobuf message (tritonclient: `InferResult.get_response()`); `model` names the
    model in errors. Raises UnreadableResponse naming the model and the output for: an output asked
    for that the response lacks, a datatype not in DATATYPES, a shape with a negative dimension, data
    missing, or more or fewer elements (bytes) than the shape needs."""
    outputs = list(response.outputs)
    raw = response.raw_output_contents
    if len(raw) > len(outputs):
        raise UnreadableResponse(
            model,
            None,
            f"the response has {len(raw)} raw_output_contents for {len(outputs)} outputs "
            f"{[o.name for o in outputs]} (the protocol wants one per output, in order)",
        )
    position = {tensor.name: index for index, tensor in enumerate(outputs)}
    wanted = list(names) if names is not None else [tensor.name for tensor in outputs]
    arrays: dict[str, np.ndarray] = {}
    for name in wanted:
        index = position.get(name)
        if index is None:
            raise UnreadableResponse(
                model, name, f"the response has no such output (it has {sorted(position)})"
            )
        if raw and index >= len(raw):
            raise UnreadableResponse(
                model,
                name,
                f"no raw_output_contents entry for it: the response has {len(raw)} for "
                f"{len(outputs)} outputs (the protocol wants one per output, in order)",
            )
        try:
            arrays[name] = _read(outputs[index], raw[index] if raw else None, model)
        except (MemoryError, ValueError) as exc:  # a shape numpy cannot hold: the answer, not the server
            raise UnreadableResponse(model, name, f"cannot be read ({type(exc).__name__}: {exc})") from None
    return arrays


def _read(tensor: ModelInferResponse.InferOutputTensor, raw: bytes | None, model: str) -> np.ndarray:
    name, datatype = tensor.name, tensor.datatype
    shape = [int(d) for d in tensor.shape]

    def unreadable(problem: str) -> UnreadableResponse:
        return UnreadableResponse(model, name, problem)

    kind = KINDS.get(datatype)
    if kind is None:
        raise unreadable(f"datatype {datatype!r} is not one the client reads ({', '.join(DATATYPES)})")
    if any(d < 0 for d in shape):
        raise unreadable(f"shape {shape} has a negative dimension")
    count = math.prod(shape)
    typed = getattr(tensor.contents, kind.field) if kind.field else ()
    # raw when the response has it; an empty raw entry beside typed data is read typed
    if raw is not None and (raw or count == 0 or not typed):
        flat = _from_raw(kind, datatype, raw, count, shape, unreadable)
    else:
        flat = _from_typed(tensor, kind, datatype, typed, count, shape, unreadable)
    return flat.reshape(shape)


def _from_raw(
    kind: _Kind, datatype: str, raw: bytes, count: int, shape: list[int], unreadable: Unreadable
) -> np.ndarray:
    if kind.raw is None:
        return _bytes_elements(raw, count, shape, unreadable)
    needed = count * kind.raw.itemsize
    if len(raw) != needed:
        raise unreadable(
            f"raw_output_contents holds {len(raw)} bytes, shape {shape} {datatype} needs {needed}"
            + ("" if len(raw) % kind.raw.itemsize else f" ({len(raw) // kind.raw.itemsize} values)")
        )
    flat = np.frombuffer(raw, dtype=kind.raw)
    if datatype == "BF16":  # the upper half of a float32
        return (flat.astype(np.uint32) << 16).view(np.float32)
    return flat


def _bytes_elements(raw: bytes, count: int, shape: list[int], unreadable: Unreadable) -> np.ndarray:
    """BYTES raw: each element a 4-byte little-endian length, then that many bytes."""
    view = memoryview(raw)
    if 4 * count > len(view):  # before allocating: a shape may claim far more than the bytes hold
        raise unreadable(
            f"raw_output_contents holds {len(view)} bytes, too few for the {count} BYTES elements of "
            f"shape {shape} (4 bytes of length each at least)"
        )
    elements = np.empty(count, dtype=np.object_)
    offset = 0
    for index in range(count):
        if offset + 4 > len(view):
            raise unreadable(f"raw_output_contents holds {index} BYTES elements, shape {shape} needs {count}")
        (length,) = _LENGTH.unpack_from(view, offset)
        offset += 4
        if offset + length > len(view):
            raise unreadable(
                f"raw_output_contents: BYTES element {index} says {length} bytes, "
                f"{len(view) - offset} are left"
            )
        elements[index] = bytes(view[offset : offset + length])
        offset += length
    if offset != len(view):
        raise unreadable(
            f"raw_output_contents holds {len(view) - offset} bytes after the {count} BYTES elements "
            f"shape {shape} needs"
        )
    return elements


def _from_typed(
    tensor: ModelInferResponse.InferOutputTensor,
    kind: _Kind,
    datatype: str,
    typed: Sequence[object],
    count: int,
    shape: list[int],
    unreadable: Unreadable,
) -> np.ndarray:
    if kind.field is None:
        if count == 0:
            return np.empty(0, dtype=kind.result)
        raise unreadable(
            f"no data: {datatype} comes only as raw_output_contents (the protocol has no typed field "
            f"for it), and the response has none{_filled(tensor)}"
        )
    if len(typed) != count:
        if typed:
            problem = f"shape {shape} {datatype} needs {count} values, {kind.field} holds {len(typed)}"
        else:
            problem = (
                f"no data: shape {shape} {datatype} needs {count} values, the response has neither "
                f"raw_output_contents nor {kind.field}{_filled(tensor)}"
            )
        raise unreadable(problem)
    if kind.raw is None:  # BYTES
        elements = np.empty(count, dtype=np.object_)
        elements[:] = list(typed)
        return elements
    wide = np.fromiter(typed, dtype=FIELD_DTYPES[kind.field], count=count)
    if count and wide.dtype != kind.result:  # INT8/16 from int_contents, UINT8/16 from uint_contents
        info = np.iinfo(kind.result)
        low, high = int(wide.min()), int(wide.max())
        if low < info.min or high > info.max:
            raise unreadable(
                f"{kind.field} holds {low if low < info.min else high}, outside {datatype} "
                f"[{info.min}, {info.max}]"
            )
    return wide.astype(kind.result, copy=False)


def _filled(tensor: ModelInferResponse.InferOutputTensor) -> str:
    """The typed fields an output fills, for an error that found none where it looked."""
    filled = [f"{field.name} ({len(values)} values)" for field, values in tensor.contents.ListFields()]
    return f" (it fills {', '.join(filled)})" if filled else ""
