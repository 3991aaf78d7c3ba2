"""Post-processing of model outputs into detections; one decoder per `postprocess.type`.

The specs the decoders read are in `client.postprocess`; nothing here imports the profile module. The
SSD and BlazeFace decoders, and the barcode reader (zxing-cpp), load on first use (`from
client.decoders import SsdDecoder` works as before)."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ..postprocess import (
    BarcodePostprocess,
    ClassifyPostprocess,
    CtcPostprocess,
    DbPostprocess,
    IrisPostprocess,
    LandmarksPostprocess,
)
from .base import Decoder, Detection, check_outputs
from .classify import ClassifyDecoder
from .ctc import CtcDecoder, read_characters
from .db import DbDecoder
from .iris import IrisDecoder
from .landmarks import FACE_MESH_REGIONS, InputGeometry, LandmarksDecoder
from .raw import RawDecoder

if TYPE_CHECKING:
    from ..profile import ModelSpec
    from .barcode import BarcodeReader
    from .blazeface import BlazefaceDecoder
    from .ssd import SsdDecoder

__all__ = [
    "FACE_MESH_REGIONS",
    "BarcodeReader",
    "BlazefaceDecoder",
    "ClassifyDecoder",
    "CtcDecoder",
    "DbDecoder",
    "Decoder",
    "Detection",
    "InputGeometry",
    "IrisDecoder",
    "LandmarksDecoder",
    "RawDecoder",
    "SsdDecoder",
    "check_outputs",
    "make_decoder",
    "read_characters",
]

# loaded on first use: they import the profile module (SSD, BlazeFace) or zxing-cpp (barcodes)
_LAZY = {"SsdDecoder": ".ssd", "BlazefaceDecoder": ".blazeface", "BarcodeReader": ".barcode"}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module, __name__), name)


def geometry(model: ModelSpec | None, default_width: int, default_height: int) -> InputGeometry:
    """The input size and resize mode a model spec declares (the defaults without one)."""
    if model is None:
        return InputGeometry(default_width, default_height)
    return InputGeometry(model.size.width, model.size.height, model.resize, model.max_width)


def make_decoder(spec: Any, model: ModelSpec | None = None, *, key: str = "postprocess") -> Decoder:
    """The decoder of a `postprocess` spec. `model` (the stage's model spec) gives the input size and
    resize mode that geometric decoders map back from; `key` (e.g. "stages[1].postprocess") is where
    their errors point. A ctc decoder still needs its characters bound (CtcDecoder.bind) before it
    decodes. A barcode stage has no model: it uses BarcodeReader(spec), not a decoder."""
    # imported here, not at the top, in case the module of these specs comes to import ours
    from ..postprocess import BlazefacePostprocess, RawPostprocess, SsdPostprocess

    if isinstance(spec, SsdPostprocess):
        from .ssd import SsdDecoder

        return SsdDecoder(spec)
    if isinstance(spec, BlazefacePostprocess):
        from .blazeface import BlazefaceDecoder

        return BlazefaceDecoder(spec)
    if isinstance(spec, DbPostprocess):
        return DbDecoder(spec, resize=model.resize if model is not None else "stretch", key=key)
    if isinstance(spec, ClassifyPostprocess):
        return ClassifyDecoder(spec, key=key)
    if isinstance(spec, CtcPostprocess):
        return CtcDecoder(spec, key=key)
    if isinstance(spec, LandmarksPostprocess):
        return LandmarksDecoder(spec, geometry(model, 192, 192), key=key)
    if isinstance(spec, IrisPostprocess):
        return IrisDecoder(spec, geometry(model, 64, 64), key=key)
    if isinstance(spec, BarcodePostprocess):
        raise TypeError("a barcode stage has no model to decode: read it with BarcodeReader(spec)")
    if isinstance(spec, RawPostprocess):
        return RawDecoder()
    raise TypeError(f"no decoder for post-processing {type(spec).__name__}")
