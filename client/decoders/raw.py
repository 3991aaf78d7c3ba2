"""`raw` post-processing: no decoding; records describe the output tensors instead of boxes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from .base import Detection, Outputs


class RawDecoder:
    roles: Mapping[str, Sequence[str]] = {}

    def decode(self, outputs: Outputs, frame_width: int, frame_height: int) -> list[Detection]:
        return []

    @staticmethod
    def describe(outputs: Outputs) -> dict[str, list[int]]:
        """Output name -> shape, written into each record of a `raw` profile."""
        if isinstance(outputs, Mapping):
            return {name: list(array.shape) for name, array in outputs.items()}
        return {"output": list(outputs.shape)}
