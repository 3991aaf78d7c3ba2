"""Barcodes read in the client with zxing-cpp (no model): on the frame or on a crop of it."""

from __future__ import annotations

import warnings

import cv2
import numpy as np
import zxingcpp

from ..postprocess import BARCODE_FORMATS, BarcodePostprocess
from .base import Detection, Point


def _zxing_format(name: str) -> zxingcpp.BarcodeFormat:
    return getattr(zxingcpp.BarcodeFormat, BARCODE_FORMATS[name])


class BarcodeReader:
    """`read(image)` -> one Detection per barcode found: label, class_id 0, score 1.0, `text` (its
    content: an EAN-13's 13 digits, a UPC-A's 12), fields (("format", "EAN-13"),) with the format
    spelled as in `specs.BARCODE_FORMATS` (EAN-13, UPC-A, Code-128, QR, ...), `quad` zxing's position (the
    barcode's corners clockwise from its own top-left), `box` the quad's bounding box, clipped.
    Any image is safe: empty, tiny, grey or colour (BGR, BGRA), any dtype; what cannot hold a barcode
    gives no result."""

    def __init__(self, spec: BarcodePostprocess) -> None:
        self.spec = spec
        self.formats = [_zxing_format(name) for name in spec.formats]
        self.names = {_zxing_format(name): name for name in BARCODE_FORMATS}

    def read(self, image_bgr: np.ndarray | None) -> list[Detection]:
        grey = as_grey(image_bgr)
        if grey is None:
            return []
        height, width = grey.shape
        try:
            found = zxingcpp.read_barcodes(
                grey,
                formats=self.formats,
                try_rotate=self.spec.try_rotate,
                try_downscale=self.spec.try_downscale,
                try_invert=self.spec.try_invert,
            )
        except (ValueError, RuntimeError):  # an image zxing refuses (none passes as_grey, but stay safe)
            return []
        results = []
        for barcode in found[: self.spec.max_results]:
            position = barcode.position
            corners = (position.top_left, position.top_right, position.bottom_right, position.bottom_left)
            quad: tuple[Point, ...] = tuple(
                (float(min(max(p.x, 0), width)), float(min(max(p.y, 0), height))) for p in corners
            )
            xs, ys = [x for x, _ in quad], [y for _, y in quad]
            name, text = self.named(barcode.format, barcode.text)
            results.append(
                Detection(
                    label=self.spec.label,
                    class_id=0,
                    score=1.0,
                    box=(min(xs), min(ys), max(xs), max(ys)),
                    quad=quad,
                    text=text,
                    fields=(("format", name),),
                )
            )
        return results

    def named(self, barcode_format: zxingcpp.BarcodeFormat, text: str) -> tuple[str, str]:
        """(format name, text). zxing-cpp 3 gives a UPC-A's 12 digits as 13, with a leading 0, and
        calls it EAN-13 when EAN-13 is read too: a UPC-A is reported as UPC-A with its 12 digits
        whenever UPC-A is one of the formats read (as zxing-cpp 2 did)."""
        name = self.names.get(barcode_format) or str(barcode_format).replace(" ", "-")
        upc = len(text) == 13 and text.startswith("0") and text.isdigit()
        if upc and (name == "UPC-A" or (name == "EAN-13" and "UPC-A" in self.spec.formats)):
            return "UPC-A", text[1:]
        return name, text


def as_grey(image: np.ndarray | None) -> np.ndarray | None:
    """A contiguous uint8 grey image, or None for anything that holds no picture (empty, 1-D, ...)."""
    if image is None:
        return None
    array = np.asarray(image)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim not in (2, 3) or array.size == 0 or min(array.shape[:2]) < 1:
        return None
    if array.dtype != np.uint8:
        if array.dtype == np.bool_:
            array = array.astype(np.uint8) * 255
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # NaN, inf: clipped or zero
                array = np.nan_to_num(array.astype(np.float64), nan=0.0)
                array = np.clip(array, 0, 255).astype(np.uint8)
    if array.ndim == 3:
        if array.shape[2] == 3:
            array = cv2.cvtColor(np.ascontiguousarray(array), cv2.COLOR_BGR2GRAY)
        elif array.shape[2] == 4:
            array = cv2.cvtColor(np.ascontiguousarray(array), cv2.COLOR_BGRA2GRAY)
        else:
            return None
    return np.ascontiguousarray(array)
