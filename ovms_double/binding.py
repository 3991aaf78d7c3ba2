"""A guard against a deadlock in OpenVINO's Python binding, shared by the double and the benchmark's
in-process baseline (which loads this module alone: it imports only OpenVINO and NumPy).

The binding's first calls that turn NumPy arrays into tensors and back initialise function-local
statics whose initialiser releases and retakes the GIL (pybind11's `gil_safe_call_once_and_store` for
the NumPy API). A second thread entering the same function meanwhile holds the GIL while it waits on
the static's guard: each waits for the other, and every Python thread of the process stops (seen with
gdb in `bench/inference_inprocess.py` at start-up: one thread in `__cxa_guard_acquire` holding the
GIL, one in `call_once` waiting for it; docs/benchmarks.md). One inference from a single thread,
before any other thread calls into the binding, initialises those statics.

A model with dynamic input dimensions may not run at every size (PP-OCR's recogniser fails below a
height of 48: its pooling kernel exceeds the data): priming tries the smallest allowed size, then 64
for every dynamic dimension but the batch, and when neither runs still converts the inputs and reads
them back, so the same conversions have run. A model the prime cannot run loads all the same, as in
the real server.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import openvino as ov

# sizes tried for each dynamic dimension: the smallest it allows (None), then this
_DYNAMIC_TRIALS = (None, 64)


def _shape(port: ov.Output, size: int | None = None) -> list[int]:
    """A concrete shape for a port: its static size, or for a dynamic dimension `size` (within its
    bounds) or, without one, the smallest it allows. The first dimension (the batch) stays at its
    smallest."""
    dims = []
    for index, d in enumerate(port.get_partial_shape()):
        if d.is_static:
            dims.append(d.get_length())
            continue
        low = max(1, d.get_min_length())
        wanted = low if size is None or index == 0 else max(low, size)
        dims.append(wanted if d.get_max_length() < 0 else min(wanted, d.get_max_length()))
    return dims


def prime(
    compiled: ov.CompiledModel,
    share_inputs: bool = True,
    accepts: Callable[[dict[int, tuple[int, ...]]], bool] | None = None,
) -> None:
    """One inference of zeros, its inputs passed as NumPy arrays and its outputs read back as NumPy
    arrays, as a server does it. Call it from one thread before others call into OpenVINO.

    For a model with dynamic inputs, `accepts` (input index -> shape) tells which trial shapes the
    model's shape inference accepts: only those are run, because a failed inference can leave
    OpenVINO's CPU plugin answering later requests wrongly (see servable.py, _ShapeCheck)."""
    request = compiled.create_infer_request()
    dynamic = any(port.get_partial_shape().is_dynamic for port in compiled.inputs)
    inputs: dict[int, np.ndarray] = {}
    for size in _DYNAMIC_TRIALS if dynamic else (None,):
        inputs = {
            index: np.zeros(_shape(port, size), port.get_element_type().to_dtype())
            for index, port in enumerate(compiled.inputs)
        }
        if dynamic and accepts is not None and not accepts({i: a.shape for i, a in inputs.items()}):
            continue
        try:
            request.infer(inputs, share_inputs=share_inputs)
        except RuntimeError:
            if not dynamic:
                raise
            continue
        for index in range(len(compiled.outputs)):
            request.get_output_tensor(index).data.copy()
        return
    # no trial size runs this dynamic model: convert the last trial's arrays to tensors and back
    for index, array in inputs.items():
        request.set_input_tensor(index, ov.Tensor(array, shared_memory=share_inputs))
        request.get_input_tensor(index).data.copy()
