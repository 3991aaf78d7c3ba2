"""Post-processing of model outputs into detections; one decoder per `postprocess.type`."""

from __future__ import annotations

from ..profile import BlazefacePostprocess, RawPostprocess, SsdPostprocess
from .base import Decoder, Detection, check_outputs
from .blazeface import BlazefaceDecoder
from .raw import RawDecoder
from .ssd import SsdDecoder

__all__ = [
    "BlazefaceDecoder",
    "Decoder",
    "Detection",
    "RawDecoder",
    "SsdDecoder",
    "check_outputs",
    "make_decoder",
]


def make_decoder(spec: SsdPostprocess | BlazefacePostprocess | RawPostprocess) -> Decoder:
    if isinstance(spec, SsdPostprocess):
        return SsdDecoder(spec)
    if isinstance(spec, BlazefacePostprocess):
        return BlazefaceDecoder(spec)
    return RawDecoder()
