"""A guard against a deadlock in OpenVINO's Python binding, shared by the double and the benchmark's
in-process baseline (which loads this module alone: it imports only OpenVINO and NumPy).

The binding's first calls that turn NumPy arrays into tensors and back initialise function-local
statics whose initialiser releases and retakes the GIL (pybind11's `gil_safe_call_once_and_store` for
the NumPy API). A second thread entering the same function meanwhile holds the GIL while it waits on
the static's guard: each waits for the other, and every Python thread of the process stops (seen with
gdb in `bench/inference_inprocess.py` at start-up: one thread in `__cxa_guard_acquire` holding the
GIL, one in `call_once` waiting for it; docs/benchmarks.md). One inference from a single thread,
before any other thread calls into the binding, initialises those statics.
"""

from __future__ import annotations

import numpy as np
import openvino as ov


def _shape(port: ov.Output) -> list[int]:
    """A concrete shape for a port: its static size, or the smallest a dynamic dimension allows."""
    return [d.get_length() if d.is_static else max(1, d.get_min_length()) for d in port.get_partial_shape()]


def prime(compiled: ov.CompiledModel, share_inputs: bool = True) -> None:
    """One inference of zeros, its inputs passed as NumPy arrays and its outputs read back as NumPy
    arrays, as a server does it. Call it from one thread before others call into OpenVINO."""
    request = compiled.create_infer_request()
    inputs = {
        index: np.zeros(_shape(port), port.get_element_type().to_dtype())
        for index, port in enumerate(compiled.inputs)
    }
    request.infer(inputs, share_inputs=share_inputs)
    for index in range(len(compiled.outputs)):
        request.get_output_tensor(index).data.copy()
