"""KServe v2 gRPC `inference.GRPCInferenceService` as OVMS serves it (kfs_grpc_inference_service.cpp).

Messages and the servicer base class are tritonclient's generated protos: the same package and service
name as OVMS's KServe proto, plus methods OVMS does not have, which answer UNIMPLEMENTED here as there.
Metrics are counted as the real server counts them: ModelInfer and ModelMetadata per resolved version,
success or failure, once the version is known; ModelReady always as a success, without a version; an
unknown model or version counts nothing; Server* calls count nothing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator

import grpc
import numpy as np
from tritonclient.grpc import service_pb2 as kfs
from tritonclient.grpc import service_pb2_grpc as kfs_grpc

from . import binary
from .manager import ModelManager
from .release import Release
from .servable import WAIT_FOR_LOADED_TIMEOUT_S, ModelVersion, State
from .status import Code, ServingError
from .tensors import from_kserve
from .validation import check_count, check_dims, check_negative, from_raw, from_values, precision_error

log = logging.getLogger("serving")

SERVER_NAME = "OpenVINO Model Server"
PLATFORM = "OpenVINO"


def abort(context: grpc.ServicerContext, exc: ServingError) -> None:
    context.abort(exc.code.grpc_code, exc.grpc_text)


def parse_version(text: str) -> int:
    if not text:
        return 0
    if not text.isdigit():
        raise ServingError(Code.MODEL_VERSION_INVALID_FORMAT)
    return int(text)


def ready_instance(manager: ModelManager, name: str, version: int) -> ModelVersion:
    """Version for metadata: present and AVAILABLE right now (waitForLoaded with timeout 0)."""
    instance = manager.get_version(name, version)
    if instance.state == State.AVAILABLE:
        return instance
    if instance.state > State.AVAILABLE:
        raise ServingError(Code.MODEL_VERSION_NOT_LOADED_ANYMORE)
    raise ServingError(Code.MODEL_VERSION_NOT_LOADED_YET)


def metadata_response(manager: ModelManager, instance: ModelVersion) -> kfs.ModelMetadataResponse:
    model = manager.find(instance.name)
    assert model is not None
    response = kfs.ModelMetadataResponse(name=instance.name, platform=PLATFORM)
    # AVAILABLE versions plus the resolved one, ascending (addReadyVersions)
    versions = {v.version for v in model.snapshot() if v.state == State.AVAILABLE} | {instance.version}
    response.versions.extend(str(v) for v in sorted(versions))
    for infos, target in ((instance.inputs, response.inputs), (instance.outputs, response.outputs)):
        for info in infos:
            target.add(name=info.name, datatype=info.precision.kserve, shape=info.dims())
    return response


def counted(
    instance: ModelVersion, interface: str, method: str, fn: Callable[[], object], timed: bool = False
) -> object:
    """Run a request on a resolved version and count it as success or failure (and its time)."""
    started = time.perf_counter()
    try:
        result = fn()
    except ServingError:
        instance.reporter.request(interface, method, ok=False)
        raise
    instance.reporter.request(interface, method, ok=True)
    if timed:
        instance.reporter.request_time(interface, (time.perf_counter() - started) * 1e6)
    return result


def infer_inputs(
    instance: ModelVersion, request: kfs.ModelInferRequest, count_inputs: bool = True
) -> dict[str, np.ndarray]:
    """Validate a ModelInferRequest against the version's inputs (RequestValidator order), then turn
    binary inputs into tensors. Raw numeric inputs view the request's bytes (no copy)."""
    if count_inputs:
        check_count(instance, len(request.inputs))
    raw = list(request.raw_input_contents)
    if raw:
        for tensor in request.inputs:
            if tensor.HasField("contents"):
                raise ServingError(
                    Code.INVALID_MESSAGE_STRUCTURE,
                    "Passing buffers both in InferInputTensor contents and in raw_input_contents is not "
                    f"allowed. Detected buffer in InferInputTensor contents for input: {tensor.name}",
                )
    by_name = {t.name: (i, t) for i, t in enumerate(request.inputs)}
    arrays: dict[str, np.ndarray] = {}
    images: dict[str, list[bytes]] = {}
    for info in instance.inputs:
        if info.name not in by_name:
            raise ServingError(Code.INVALID_MISSING_INPUT, f"Required input: {info.name}")
        index, tensor = by_name[info.name]
        label = f"input name: {info.name}"
        dims = list(tensor.shape)
        check_negative(dims, label, kserve=True)
        buffer = raw[index] if raw and index < len(raw) else b""
        if tensor.datatype == "BYTES":
            encoded = binary.split_raw(buffer) if raw else list(tensor.contents.bytes_contents)
            binary.validate_request(info, dims, encoded, label, raw=bool(raw))
            images[info.name] = encoded
            continue
        precision = from_kserve(tensor.datatype)
        if precision is None or precision.tf_dtype != info.precision.tf_dtype:
            raise precision_error(info, tensor.datatype, label)
        check_dims(info, dims, label)
        dtype = info.precision.numpy
        if raw:
            arrays[info.name] = from_raw(buffer, dims, dtype, label)
        else:
            values = _typed_values(tensor.contents, dtype)
            arrays[info.name] = from_values(values, dims, dtype, label, unit=" values")
    for info in instance.inputs:
        if info.name in images:
            arrays[info.name] = binary.to_tensor(info, images[info.name], raw=bool(raw))
    return arrays


def _typed_values(contents: kfs.InferTensorContents, dtype: np.dtype) -> np.ndarray:
    field = {
        np.dtype(np.float32): "fp32_contents",
        np.dtype(np.float64): "fp64_contents",
        np.dtype(np.int64): "int64_contents",
        np.dtype(np.uint32): "uint_contents",
        np.dtype(np.uint64): "uint64_contents",
        np.dtype(np.uint8): "uint_contents",
        np.dtype(np.uint16): "uint_contents",
        np.dtype(np.bool_): "bool_contents",
    }.get(dtype, "int_contents")
    return np.asarray(getattr(contents, field))


def infer(
    manager: ModelManager, request: kfs.ModelInferRequest, interface: str, count_inputs: bool
) -> kfs.ModelInferResponse:
    """ModelInfer: resolve the version (an unknown one counts nothing), then count the outcome."""
    version = parse_version(request.model_version)
    instance = manager.get_version(
        request.model_name, version, missing=Code.MEDIAPIPE_DEFINITION_NAME_MISSING
    )

    def run() -> kfs.ModelInferResponse:
        instance.acquire(WAIT_FOR_LOADED_TIMEOUT_S)
        try:
            inputs = infer_inputs(instance, request, count_inputs)
            results = instance.infer(inputs)
        finally:
            instance.release()
        response = kfs.ModelInferResponse(
            model_name=request.model_name, model_version=str(instance.version), id=request.id
        )
        for info, data, shape in results:
            response.outputs.add(name=info.name, datatype=info.precision.kserve, shape=shape)
            response.raw_output_contents.append(data)
        return response

    result = counted(instance, interface, "ModelInfer", run, timed=True)
    assert isinstance(result, kfs.ModelInferResponse)
    return result


class KServeService(kfs_grpc.GRPCInferenceServiceServicer):
    def __init__(
        self,
        manager: ModelManager,
        release: Release,
        is_ready: Callable[[], bool],
        count_inputs: bool = True,
    ) -> None:
        self.manager = manager
        self.release = release
        self.is_ready = is_ready
        self.count_inputs = count_inputs

    @staticmethod
    def _answer(context: grpc.ServicerContext, what: str, fn: Callable[[], object]) -> object:
        try:
            return fn()
        except ServingError as exc:
            log.debug("%s failed: %s", what, exc.text)
            abort(context, exc)
            raise AssertionError("unreachable") from exc  # context.abort raises

    def ServerLive(
        self, request: kfs.ServerLiveRequest, context: grpc.ServicerContext
    ) -> kfs.ServerLiveResponse:
        return kfs.ServerLiveResponse(live=True)

    def ServerReady(
        self, request: kfs.ServerReadyRequest, context: grpc.ServicerContext
    ) -> kfs.ServerReadyResponse:
        return kfs.ServerReadyResponse(ready=self.is_ready())

    def ServerMetadata(
        self, request: kfs.ServerMetadataRequest, context: grpc.ServicerContext
    ) -> kfs.ServerMetadataResponse:
        return kfs.ServerMetadataResponse(name=SERVER_NAME, version=str(self.release))

    def ModelReady(
        self, request: kfs.ModelReadyRequest, context: grpc.ServicerContext
    ) -> kfs.ModelReadyResponse:
        def ready() -> kfs.ModelReadyResponse:
            instance = self.manager.get_version(request.name, parse_version(request.version))
            instance.reporter.request("gRPC", "ModelReady", ok=True)
            return kfs.ModelReadyResponse(ready=instance.state == State.AVAILABLE)

        return self._answer(context, "ModelReady", ready)  # type: ignore[return-value]

    def ModelMetadata(
        self, request: kfs.ModelMetadataRequest, context: grpc.ServicerContext
    ) -> kfs.ModelMetadataResponse:
        def metadata() -> object:
            instance = self.manager.get_version(request.name, parse_version(request.version))
            return counted(
                instance,
                "gRPC",
                "ModelMetadata",
                lambda: metadata_response(
                    self.manager, ready_instance(self.manager, request.name, instance.version)
                ),
            )

        return self._answer(context, "ModelMetadata", metadata)  # type: ignore[return-value]

    def ModelInfer(
        self, request: kfs.ModelInferRequest, context: grpc.ServicerContext
    ) -> kfs.ModelInferResponse:
        return self._answer(  # type: ignore[return-value]
            context, "ModelInfer", lambda: infer(self.manager, request, "gRPC", self.count_inputs)
        )

    def ModelStreamInfer(
        self, request_iterator: Iterator[kfs.ModelInferRequest], context: grpc.ServicerContext
    ) -> Iterator[kfs.ModelStreamInferResponse]:
        """Only MediaPipe graphs stream in OVMS; the double serves none, so the stream ends at the first
        request with the answer OVMS gives for a name that is not a graph."""
        first = next(request_iterator, None)
        if first is None:
            abort(context, ServingError(Code.NOT_IMPLEMENTED))
        abort(context, ServingError(Code.MEDIAPIPE_DEFINITION_NAME_MISSING))
        yield from ()


def add_service(
    server: grpc.Server,
    manager: ModelManager,
    release: Release,
    is_ready: Callable[[], bool],
    count_inputs: bool = True,
) -> None:
    kfs_grpc.add_GRPCInferenceServiceServicer_to_server(
        KServeService(manager, release, is_ready, count_inputs), server
    )
