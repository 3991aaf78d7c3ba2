"""Precision tables: OpenVINO element types, TF DataType numbers, KServe datatype names, numpy dtypes."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import openvino as ov


@dataclass(frozen=True)
class Precision:
    ovms_name: str  # how the real server names it in error messages (e.g. U8, FP32)
    tf_dtype: int  # tensorflow.DataType enum value
    kserve: str  # KServe datatype string
    numpy: np.dtype


_TABLE: dict[ov.Type, Precision] = {
    ov.Type.f32: Precision("FP32", 1, "FP32", np.dtype(np.float32)),
    ov.Type.f64: Precision("FP64", 2, "FP64", np.dtype(np.float64)),
    ov.Type.i32: Precision("I32", 3, "INT32", np.dtype(np.int32)),
    ov.Type.u8: Precision("U8", 4, "UINT8", np.dtype(np.uint8)),
    ov.Type.i16: Precision("I16", 5, "INT16", np.dtype(np.int16)),
    ov.Type.i8: Precision("I8", 6, "INT8", np.dtype(np.int8)),
    ov.Type.i64: Precision("I64", 9, "INT64", np.dtype(np.int64)),
    ov.Type.boolean: Precision("BOOL", 10, "BOOL", np.dtype(np.bool_)),
    ov.Type.u16: Precision("U16", 17, "UINT16", np.dtype(np.uint16)),
    ov.Type.f16: Precision("FP16", 19, "FP16", np.dtype(np.float16)),
    ov.Type.u32: Precision("U32", 22, "UINT32", np.dtype(np.uint32)),
    ov.Type.u64: Precision("U64", 23, "UINT64", np.dtype(np.uint64)),
}
_BY_TF = {p.tf_dtype: p for p in _TABLE.values()}
_BY_KSERVE = {p.kserve: p for p in _TABLE.values()}
_TF_NAMES = {
    1: "FP32",
    2: "FP64",
    3: "I32",
    4: "U8",
    5: "I16",
    6: "I8",
    7: "STRING",
    9: "I64",
    10: "BOOL",
    17: "U16",
    19: "FP16",
    22: "U32",
    23: "U64",
}

UNDEFINED = Precision("UNDEFINED", 0, "INVALID", np.dtype(np.uint8))


def from_ov(element_type: ov.Type) -> Precision:
    return _TABLE.get(element_type, UNDEFINED)


def from_tf(dtype: int) -> Precision | None:
    return _BY_TF.get(dtype)


def from_kserve(datatype: str) -> Precision | None:
    return _BY_KSERVE.get(datatype)


def tf_name(dtype: int) -> str:
    return _TF_NAMES.get(dtype, "UNDEFINED")


def shape_text(dims: list[int] | tuple[int, ...]) -> str:
    return "(" + ",".join(str(d) for d in dims) + ")"
