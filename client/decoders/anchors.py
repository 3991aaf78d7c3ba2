"""SSD anchors as MediaPipe's SsdAnchorsCalculator generates them (used by the BlazeFace decoder)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class AnchorOptions:
    input_width: int
    input_height: int
    min_scale: float
    max_scale: float
    strides: tuple[int, ...]
    aspect_ratios: tuple[float, ...] = (1.0,)
    anchor_offset_x: float = 0.5
    anchor_offset_y: float = 0.5
    interpolated_scale_aspect_ratio: float = 1.0
    reduce_boxes_in_lowest_layer: bool = False
    fixed_anchor_size: bool = True

    @property
    def num_layers(self) -> int:
        return len(self.strides)


# face_detection_front.tflite (MediaPipe face_detection_front graph): 896 anchors for 128x128.
FRONT_128 = AnchorOptions(
    input_width=128,
    input_height=128,
    min_scale=0.1484375,
    max_scale=0.75,
    strides=(8, 16, 16, 16),
)

PRESETS = {"front": FRONT_128}


def _scale(options: AnchorOptions, index: int) -> float:
    if options.num_layers == 1:
        return (options.min_scale + options.max_scale) / 2
    step = (options.max_scale - options.min_scale) / (options.num_layers - 1)
    return options.min_scale + step * index


def generate_anchors(options: AnchorOptions) -> np.ndarray:
    """Rows of (x_center, y_center, width, height), normalised, in the model's output order."""
    rows: list[tuple[float, float, float, float]] = []
    layer = 0
    while layer < options.num_layers:
        sizes: list[tuple[float, float]] = []  # (width, height) per anchor of a cell
        last = layer
        # Consecutive layers with the same stride share one feature map.
        while last < options.num_layers and options.strides[last] == options.strides[layer]:
            scale = _scale(options, last)
            if last == 0 and options.reduce_boxes_in_lowest_layer:
                shapes = [(1.0, 0.1), (2.0, scale), (0.5, scale)]
            else:
                shapes = [(ratio, scale) for ratio in options.aspect_ratios]
                if options.interpolated_scale_aspect_ratio > 0:
                    following = 1.0 if last == options.num_layers - 1 else _scale(options, last + 1)
                    shapes.append((options.interpolated_scale_aspect_ratio, math.sqrt(scale * following)))
            for ratio, anchor_scale in shapes:
                root = math.sqrt(ratio)
                sizes.append((anchor_scale * root, anchor_scale / root))
            last += 1
        stride = options.strides[layer]
        rows_count = math.ceil(options.input_height / stride)
        cols_count = math.ceil(options.input_width / stride)
        for y in range(rows_count):
            for x in range(cols_count):
                x_center = (x + options.anchor_offset_x) / cols_count
                y_center = (y + options.anchor_offset_y) / rows_count
                for width, height in sizes:
                    if options.fixed_anchor_size:
                        rows.append((x_center, y_center, 1.0, 1.0))
                    else:
                        rows.append((x_center, y_center, width, height))
        layer = last
    return np.asarray(rows, dtype=np.float32)
