"""A model version compiled with OpenVINO, with the real server's version states and request guards."""

from __future__ import annotations

import enum
import logging
import queue
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import openvino as ov

from . import binding
from .config import ModelConfig
from .metrics import ModelReporter, Registry
from .status import Code, ServingError
from .tensors import Precision, from_ov, shape_text

log = logging.getLogger("modelmanager")

MODEL_FILE_SUFFIXES = (".xml", ".onnx", ".tflite", ".pdmodel")
WAIT_FOR_LOADED_TIMEOUT_S = 10.0


class State(enum.IntEnum):
    START = 10
    LOADING = 20
    AVAILABLE = 30
    UNLOADING = 40
    END = 50


class ErrorCode(enum.IntEnum):
    OK = 0
    UNKNOWN = 2
    FAILED_PRECONDITION = 9


@dataclass(frozen=True)
class TensorInfo:
    name: str
    precision: Precision
    shape: ov.PartialShape
    # OVMS's layout of the input: the config's `layout` (its tensor part), else the model's own
    # (IR rt_info), else the default "N..."; compact form such as "NHWC", "N...", "N?HWC"
    layout: str = "N..."

    def dims(self) -> list[int]:
        """Shape with -1 for dynamic dimensions, as the real server reports it."""
        return [d.get_length() if d.is_static else -1 for d in self.shape]


def find_model_file(version_dir: Path) -> Path | None:
    """The file OpenVINO should read in a version directory: IR (.xml with .bin), ONNX, TFLite, Paddle."""
    if not version_dir.is_dir():
        return None
    for suffix in MODEL_FILE_SUFFIXES:
        for candidate in sorted(version_dir.glob(f"*{suffix}")):
            if suffix == ".xml" and not candidate.with_suffix(".bin").is_file():
                continue
            return candidate
    saved_model = version_dir / "saved_model.pb"
    return saved_model if saved_model.is_file() else None


def dir_fingerprint(version_dir: Path) -> tuple:
    """Names, sizes and mtimes of a version directory's files: a failed load is retried when it changes."""
    try:
        return tuple(sorted((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in version_dir.iterdir()))
    except OSError:
        return ()


def _parse_dims(text: str) -> ov.PartialShape:
    """OVMS shape text, e.g. "(1,300,300,3)", "[1,-1,224:256,3]" -> PartialShape."""
    body = text.strip().strip("()[]")
    dims = []
    for raw in filter(None, (p.strip() for p in body.split(","))):
        if raw == "-1":
            dims.append("?")
        elif re.fullmatch(r"\d+:\d+", raw):
            low, high = raw.split(":")
            dims.append(f"{low}..{high}")
        elif raw.isdigit():
            dims.append(raw)
        else:
            raise ServingError(Code.MODEL_CONFIG_INVALID, f"The provided shape is in wrong format: {text}")
    return ov.PartialShape("[" + ",".join(dims) + "]")


def _apply_shape(model: ov.Model, config: ModelConfig) -> None:
    shape = config.shape
    if shape in (None, "", "auto"):
        if shape == "auto":
            log.warning(
                "OVMS TEST DOUBLE: shape 'auto' is not supported; model %s keeps its shape", config.name
            )
    elif isinstance(shape, str):
        if len(model.inputs) != 1:
            raise ServingError(
                Code.MODEL_CONFIG_INVALID, "Anonymous fixed shape is invalid for models with multiple inputs"
            )
        model.reshape(_parse_dims(shape))
        return
    else:
        new_shapes = {}
        for name, text in shape.items():
            if text == "auto":
                continue
            if not any(name in port.get_names() for port in model.inputs):
                raise ServingError(Code.MODEL_CONFIG_INVALID, f"Shape from config not found in model: {name}")
            new_shapes[name] = _parse_dims(text)
        if new_shapes:
            model.reshape(new_shapes)
        return
    batch = config.batch_size
    if batch and batch != "auto" and batch != "0":
        new_shapes = {}
        for port in model.inputs:
            ps = port.get_partial_shape()
            if ps.rank.is_static and ps.rank.get_length() > 0:
                ps[0] = ov.Dimension(int(batch)) if batch.isdigit() else ov.Dimension(-1)
                new_shapes[port.get_any_name()] = ps
        model.reshape(new_shapes)


def _compact(layout: ov.Layout) -> str:
    return layout.to_string().strip("[]").replace(",", "")


def _input_layout(port: ov.Output, config: ModelConfig, first: bool) -> str:
    layout = config.layout
    if isinstance(layout, str) and first:
        return layout.partition(":")[0]
    if isinstance(layout, dict):
        for name in port.get_names():
            if name in layout:
                return str(layout[name]).partition(":")[0]
    own = port.get_node().get_layout()
    return "N..." if own.empty else _compact(own)


def _apply_layout(model: ov.Model, config: ModelConfig) -> ov.Model:
    layout = config.layout
    if not layout:
        return model
    items = {model.inputs[0].get_any_name(): layout} if isinstance(layout, str) else dict(layout)
    ppp = ov.preprocess.PrePostProcessor(model)
    for name, text in items.items():
        tensor_layout, _, model_layout = text.partition(":")
        inp = ppp.input(name)
        if model_layout:
            inp.tensor().set_layout(ov.Layout(tensor_layout))
            inp.model().set_layout(ov.Layout(model_layout))
        else:
            inp.model().set_layout(ov.Layout(tensor_layout))
    return ppp.build()


class _ShapeCheck:
    """Shape inference of a model with dynamic inputs at the concrete shapes of a request, before the
    compiled model sees them: a shape the model's own operations reject (PP-OCR's recogniser below a
    height of 48, its detector at a size that is not a multiple of 32) fails that request with
    OV_INTERNAL_INFERENCE_ERROR, as in OVMS. Checked here because OpenVINO's CPU plugin, after such
    a failed inference, can fail or answer wrongly shaped outputs to later valid requests of the same
    compiled model (seen with OpenVINO 2026.4: a [1,3,48,480] request answered with batch 8 after a
    failed [8,3,128,64] one). One reshape of a copy of the model per new shape (about 10 ms), cached."""

    LIMIT = 4096

    def __init__(self, model: ov.Model) -> None:
        self._model = model
        self._copy = model.clone()
        self._lock = threading.Lock()
        self._known: dict[tuple[tuple[int, tuple[int, ...]], ...], str | None] = {}

    def problem(self, shapes: dict[int, tuple[int, ...]]) -> str | None:
        """None when the model accepts these input shapes, else OpenVINO's message."""
        key = tuple(sorted(shapes.items()))
        if key in self._known:
            return self._known[key]
        with self._lock:
            try:
                self._copy.reshape({index: ov.PartialShape(list(shape)) for index, shape in shapes.items()})
                found = None
            except Exception as exc:  # OpenVINO raises its own exception types here
                found = str(exc)
                self._copy = self._model.clone()  # no state of the failure is carried over
            if len(self._known) < self.LIMIT:
                self._known[key] = found
        return found


class _RequestPool:
    """The version's `nireq` infer requests, like OVMS's infer request queue: a gRPC thread takes an
    idle one (waiting while all are busy), runs one inference on it and gives it back.

    Not OpenVINO's `AsyncInferQueue`: when an inference fails there (a shape the model's own
    operations reject, possible with dynamic inputs, e.g. PP-OCR's recogniser below a height of 48)
    its callback never runs and every later `start_async` re-raises the stored error, so one bad
    request would hang and then fail the model for good. Here it fails that request alone, as in OVMS.
    """

    def __init__(self, compiled: ov.CompiledModel, size: int) -> None:
        self._compiled = compiled
        self._idle: queue.SimpleQueue[ov.InferRequest] = queue.SimpleQueue()
        for _ in range(size):
            self._idle.put(compiled.create_infer_request())

    def take(self) -> ov.InferRequest:
        return self._idle.get()

    def give_back(self, request: ov.InferRequest, failed: bool) -> None:
        # a request whose inference failed is replaced, so no state of the failure is carried over
        self._idle.put(self._compiled.create_infer_request() if failed else request)


class ModelVersion:
    """One loaded version: state machine, compiled model, infer request queue."""

    def __init__(self, name: str, version: int, metrics: Registry) -> None:
        self.name = name
        self.version = version
        # every series of the version exists from its creation, at 0 (ModelMetricReporter)
        self.reporter = ModelReporter(metrics, name, version)
        self.state = State.START
        self.error_code = ErrorCode.OK
        self.settings: tuple | None = None
        self.fingerprint: tuple = ()
        self.inputs: list[TensorInfo] = []
        self.outputs: list[TensorInfo] = []
        self._compiled: ov.CompiledModel | None = None
        self._pool: _RequestPool | None = None
        self._shape_check: _ShapeCheck | None = None
        self._cond = threading.Condition()
        self._in_flight = 0
        self._input_index: dict[str, int] = {}
        self.nireq = 0
        self._log_status()

    # -- state ---------------------------------------------------------------------------------
    def _set(self, state: State, error: ErrorCode = ErrorCode.OK) -> None:
        with self._cond:
            self.state = state
            self.error_code = error
            self._cond.notify_all()
        self._log_status()

    def _log_status(self) -> None:
        log.info(
            "STATUS CHANGE: Version %d of model %s status change. "
            'New status: ( "state": "%s", "error_code": "%s" )',
            self.version,
            self.name,
            self.state.name,
            self.error_code.name,
        )

    @property
    def failed_loading(self) -> bool:
        return self.state == State.LOADING and self.error_code == ErrorCode.UNKNOWN

    # -- loading -------------------------------------------------------------------------------
    def load(self, core: ov.Core, config: ModelConfig, version_dir: Path) -> bool:
        self.settings = config.load_settings()
        self.fingerprint = dir_fingerprint(version_dir)
        self._set(State.LOADING)
        try:
            model_file = find_model_file(version_dir)
            if model_file is None:
                raise ServingError(
                    Code.MODEL_NOT_LOADED, f"no .xml+.bin, .onnx or .tflite model in {version_dir}"
                )
            model = core.read_model(str(model_file))
            _apply_shape(model, config)
            model = _apply_layout(model, config)
            plugin_config = {
                k: str(v) if not isinstance(v, str) else v for k, v in config.plugin_config.items()
            }
            compiled = core.compile_model(model, config.target_device, plugin_config)
            nireq = config.nireq or int(compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))
            streams = int(compiled.get_property("NUM_STREAMS"))
            pool = _RequestPool(compiled, nireq)
            dynamic = any(port.get_partial_shape().is_dynamic for port in model.inputs)
            shape_check = _ShapeCheck(model) if dynamic else None
            # before any gRPC thread calls into OpenVINO's binding (see binding.py)
            binding.prime(
                compiled, accepts=None if shape_check is None else lambda s: shape_check.problem(s) is None
            )
        except (ServingError, RuntimeError, OSError, ValueError) as exc:
            log.error(
                "Error occurred while loading model: %s; version: %d; error: %s", self.name, self.version, exc
            )
            self._set(State.LOADING, ErrorCode.UNKNOWN)
            return False
        # Names come from the ov.Model, as in OVMS: compiling can attach extra internal names to a port.
        self.inputs = [
            TensorInfo(
                p.get_any_name(),
                from_ov(p.get_element_type()),
                p.get_partial_shape(),
                _input_layout(p, config, first=i == 0),
            )
            for i, p in enumerate(model.inputs)
        ]
        self.outputs = [
            TensorInfo(p.get_any_name(), from_ov(p.get_element_type()), p.get_partial_shape())
            for p in model.outputs
        ]
        self._input_index = {info.name: i for i, info in enumerate(self.inputs)}
        self._compiled, self._pool, self._shape_check, self.nireq = compiled, pool, shape_check, nireq
        self.reporter.loaded(streams, nireq)
        for info in self.inputs:
            log.info(
                "Input name: %s; mapping_name: ; shape: %s; precision: %s",
                info.name,
                info.shape,
                info.precision.ovms_name,
            )
        for info in self.outputs:
            log.info(
                "Output name: %s; mapping_name: ; shape: %s; precision: %s",
                info.name,
                info.shape,
                info.precision.ovms_name,
            )
        log.info(
            "Loaded model %s; version: %d; batch size: %s; No of InferRequests: %d",
            self.name,
            self.version,
            self.inputs[0].shape[0] if self.inputs and self.inputs[0].shape.rank.get_length() else "-",
            nireq,
        )
        self._set(State.AVAILABLE)
        return True

    def retire(self) -> None:
        """AVAILABLE -> UNLOADING -> (in-flight requests finish) -> END."""
        if self.state >= State.UNLOADING:
            return
        self._set(State.UNLOADING)
        with self._cond:
            while self._in_flight:
                self._cond.wait()
        self._pool = None
        self._shape_check = None
        self._compiled = None
        self.reporter.unloaded()
        self._set(State.END)

    def cleanup_failed(self) -> None:
        self._pool = None
        self._shape_check = None
        self._compiled = None
        self._set(State.END, ErrorCode.OK)

    # -- requests ------------------------------------------------------------------------------
    def acquire(self, wait_s: float) -> None:
        """Hold the version for one request (unload waits for it) or raise like waitForLoaded."""
        deadline = time.monotonic() + wait_s
        with self._cond:
            while True:
                if self.state == State.AVAILABLE:
                    self._in_flight += 1
                    return
                if self.state > State.AVAILABLE:
                    raise ServingError(Code.MODEL_VERSION_NOT_LOADED_ANYMORE)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise ServingError(Code.MODEL_VERSION_NOT_LOADED_YET)
                self._cond.wait(min(remaining, 0.1))

    def release(self) -> None:
        with self._cond:
            self._in_flight -= 1
            if not self._in_flight:
                self._cond.notify_all()

    def infer(self, inputs: dict[str, np.ndarray]) -> list[tuple[TensorInfo, bytes, list[int]]]:
        """Run one inference on one of the version's infer requests; call between acquire() and
        release(). An inference OpenVINO rejects fails this request only (OV_INTERNAL_INFERENCE_ERROR)."""
        pool = self._pool
        if pool is None:
            raise ServingError(Code.MODEL_VERSION_NOT_LOADED_ANYMORE)
        by_port = {self._input_index[name]: array for name, array in inputs.items()}
        check = self._shape_check
        problem = check.problem({i: a.shape for i, a in by_port.items()}) if check is not None else None
        if problem is not None:
            log.error("Async caught an exception %s: %s", Code.OV_INTERNAL_INFERENCE_ERROR.message, problem)
            raise ServingError(Code.OV_INTERNAL_INFERENCE_ERROR)
        asked = time.perf_counter()
        self.reporter.infer_request_taken(+1)
        request = pool.take()  # waits for an idle infer request: the scheduling queue's wait
        started = time.perf_counter()
        failed = True
        try:
            request.infer(by_port, share_inputs=True)
            outputs = []
            for i in range(len(self.outputs)):
                tensor = request.get_output_tensor(i)
                # One copy out of the reused request buffer, straight into the bytes the response carries.
                outputs.append((tensor.data.tobytes(), list(tensor.shape)))
            failed = False
        except RuntimeError as exc:
            # as OVMS's performInference: the log has OpenVINO's message, the client the status alone
            log.error("Async caught an exception %s: %s", Code.OV_INTERNAL_INFERENCE_ERROR.message, exc)
            raise ServingError(Code.OV_INTERNAL_INFERENCE_ERROR) from exc
        finally:
            finished = time.perf_counter()
            pool.give_back(request, failed)
            self.reporter.infer_request_taken(-1)
        self.reporter.wait_time((started - asked) * 1e6)
        self.reporter.inference_time((finished - started) * 1e6)
        return [(info, data, shape) for info, (data, shape) in zip(self.outputs, outputs, strict=True)]


def describe_shape(info: TensorInfo) -> str:
    return shape_text(info.dims())
