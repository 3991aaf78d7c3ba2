"""Configuration (a) of the inference benchmark: our client with OpenVINO compiled in its own process.

`python -m bench.inference_inprocess --profile DIR [--duration S] [--sync]` runs the client exactly
as `python -m client` does (sources, preprocessing, pipelining, decoders, result files: the same
code, `client.app.run`), except that the server is `InProcessServer`: the prepared model compiled
with OpenVINO in this process, with the same plugin config and number of infer requests the OVMS
double gets. One compiled model serves every stream, as one OpenVINO runtime on the machine does in
the reference in-process pipelines.

Environment (besides the client's own CLIENT_*/OVMS_RESULTS_DIR settings):
  BENCH_OV_MODEL_DIR      the model version directory (IR .xml + .bin), required
  BENCH_OV_PLUGIN_CONFIG  JSON object of OpenVINO properties, e.g. {"PERFORMANCE_HINT": "THROUGHPUT"}
  BENCH_OV_NIREQ          infer requests (0 or unset: the compiled model's optimal number)
OVMS_ADDRESS is not dialled; it is set to `in-process:1` when absent (the client requires one).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import queue
import sys
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import openvino as ov

from client.app import RunOptions, configure_logging, run
from client.backoff import Backoff
from client.errors import ClientError
from client.profile import ModelSpec, Profile, Stage
from client.server import ServerFactory
from client.settings import Deployment
from ovms_double import binding

log = logging.getLogger("bench.inprocess")

MODEL_DIR_ENV = "BENCH_OV_MODEL_DIR"
PLUGIN_CONFIG_ENV = "BENCH_OV_PLUGIN_CONFIG"
NIREQ_ENV = "BENCH_OV_NIREQ"
PLACEHOLDER_ADDRESS = "in-process:1"

# OpenVINO element types -> the KServe datatype names OVMS reports in model metadata.
_DATATYPES = {
    "u8": "UINT8",
    "i8": "INT8",
    "u16": "UINT16",
    "i16": "INT16",
    "i32": "INT32",
    "i64": "INT64",
    "f16": "FP16",
    "f32": "FP32",
    "f64": "FP64",
    "boolean": "BOOL",
}


def _model_file(directory: Path) -> Path:
    found = sorted(p for p in directory.glob("*.xml") if p.with_suffix(".bin").is_file())
    if not found:
        raise ClientError(
            f"no IR model (.xml + .bin) in {directory}",
            file="environment",
            key=MODEL_DIR_ENV,
            fix="run `launcher models prepare` and point it at <cache>/models/<name>/<version>",
        )
    return found[0]


def _port_info(port: ov.Output) -> dict[str, Any]:
    shape = [d.get_length() if d.is_static else -1 for d in port.get_partial_shape()]
    dtype = _DATATYPES.get(port.get_element_type().get_type_name(), "INVALID")
    return {"shape": shape, "dtype": dtype}


class InProcessServer:
    """`client.server.InferenceServer` backed by OpenVINO in this process.

    `predict` is called from the client's request threads; each call takes an idle infer request
    (at most `nireq` run at once, like the double's AsyncInferQueue), runs it (OpenVINO releases the
    GIL) and copies the outputs out of the reused request buffers, as a server's response would.
    One inference runs in the constructor, before the streams' threads exist: OpenVINO's binding can
    deadlock when two threads make its first calls at once (ovms_double/binding.py)."""

    def __init__(
        self, model_dir: Path, model: ModelSpec, plugin_config: Mapping[str, str], nireq: int = 0
    ) -> None:
        self.address = f"in-process OpenVINO ({model_dir})"
        self.model = model
        core = ov.Core()
        network = core.read_model(str(_model_file(model_dir)))
        compiled = core.compile_model(network, "CPU", dict(plugin_config))
        self.nireq = nireq or int(compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))
        self.compiled = compiled
        self._idle: queue.SimpleQueue[ov.InferRequest] = queue.SimpleQueue()
        for _ in range(self.nireq):
            self._idle.put(compiled.create_infer_request())
        binding.prime(compiled)
        # Names come from the model, not the compiled model (compiling can add internal names), as the
        # model server reports them.
        self._output_names = [port.get_any_name() for port in network.outputs]
        self._metadata = {
            "model_version": model.version or 1,
            "inputs": {port.get_any_name(): _port_info(port) for port in network.inputs},
            "outputs": {port.get_any_name(): _port_info(port) for port in network.outputs},
        }
        log.info(
            "compiled %s: %s, %d infer request(s), %s stream(s)",
            model.name,
            json.dumps(dict(plugin_config)),
            self.nireq,
            compiled.get_property("NUM_STREAMS"),
        )

    def predict(self, tensor: np.ndarray) -> dict[str, np.ndarray]:
        request = self._idle.get()
        try:
            request.infer({0: tensor}, share_inputs=True)
            return {
                name: request.get_output_tensor(i).data.copy() for i, name in enumerate(self._output_names)
            }
        finally:
            self._idle.put(request)

    def wait_for_metadata(self, stop: threading.Event, backoff: Backoff) -> dict[str, Any] | None:
        return None if stop.is_set() else self._metadata

    def reconnect(self) -> None:
        """Nothing to reconnect: the model lives in this process."""


def factory_from_env(environ: Mapping[str, str]) -> ServerFactory:
    directory = environ.get(MODEL_DIR_ENV, "").strip()
    if not directory:
        raise ClientError(
            "not set", file="environment", key=MODEL_DIR_ENV, fix="set it to the model version directory"
        )
    try:
        plugin_config = json.loads(environ.get(PLUGIN_CONFIG_ENV) or "{}")
    except ValueError as exc:
        raise ClientError(f"not JSON: {exc}", file="environment", key=PLUGIN_CONFIG_ENV) from None
    if not isinstance(plugin_config, dict):
        raise ClientError("expected a JSON object", file="environment", key=PLUGIN_CONFIG_ENV)
    nireq = int(environ.get(NIREQ_ENV) or 0)
    properties = {str(k): str(v) for k, v in plugin_config.items()}

    def build(_deployment: Deployment, profile: Profile, stage: Stage) -> InProcessServer:
        if stage.encoding.format != "raw" or stage.model is None:
            raise ClientError("the in-process baseline takes raw tensors of one model", key="encoding.format")
        if len(profile.cascade) > 1:
            raise ClientError("the in-process baseline runs one-model profiles", key="stages")
        return InProcessServer(Path(directory), stage.model, properties, nireq)

    return build


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.inference_inprocess", description=__doc__)
    parser.add_argument("--profile", required=True, type=Path)
    parser.add_argument("--duration", type=float)
    parser.add_argument("--max-frames", type=int)
    parser.add_argument("--sync", action="store_true")
    args = parser.parse_args(argv)
    environ = dict(os.environ)
    environ.setdefault("OVMS_ADDRESS", PLACEHOLDER_ADDRESS)
    configure_logging(environ.get("CLIENT_LOG_LEVEL", "INFO").upper())
    try:
        factory = factory_from_env(environ)
        return run(RunOptions(args.profile, args.duration, args.max_frames, args.sync), environ, factory)
    except ClientError as exc:
        print(f"error: {exc.render()}", file=sys.stderr, flush=True)
        return exc.exit_code


if __name__ == "__main__":
    sys.exit(main())
