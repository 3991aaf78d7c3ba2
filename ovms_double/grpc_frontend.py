"""gRPC services: TFS PredictionService/ModelService (ovmsclient's protos) and KServe GRPCInferenceService."""

from __future__ import annotations

import logging
from collections.abc import Callable

import grpc
import numpy as np
import openvino as ov
from ovmsclient.tfs_compat.protos.tensorflow.core.framework import tensor_pb2
from ovmsclient.tfs_compat.protos.tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from .kserve import grpc_service_pb2 as kfs
from .kserve import grpc_service_pb2_grpc as kfs_grpc
from .manager import ModelManager
from .metrics import Metrics
from .servable import WAIT_FOR_LOADED_TIMEOUT_S, ModelVersion, State, TensorInfo
from .status import Code, ServingError
from .tensors import from_kserve, shape_text, tf_name

log = logging.getLogger("serving")

SIGNATURE_DEF_MAP_TYPE_URL = "type.googleapis.com/tensorflow.serving.SignatureDefMap"


def _abort(context: grpc.ServicerContext, exc: ServingError) -> None:
    context.abort(exc.code.grpc_code, exc.text)


def _check_dims(info: TensorInfo, dims: list[int]) -> None:
    """Dimension count, batch and shape checks in the order RequestValidator makes them."""
    if any(d < 0 for d in dims):
        raise ServingError(
            Code.INVALID_SHAPE,
            f"Negative dimension size is not acceptable: {shape_text(dims)}; input name: {info.name}",
        )
    expected = info.shape
    if expected.rank.get_length() != len(dims):
        raise ServingError(
            Code.INVALID_NO_OF_SHAPE_DIMENSIONS,
            f"Expected: {shape_text(info.dims())}; Actual: {shape_text(dims)}; input name: {info.name}",
        )
    if dims and not expected[0].compatible(ov.Dimension(dims[0])):
        raise ServingError(
            Code.INVALID_BATCH_SIZE, f"Expected: {info.dims()[0]}; Actual: {dims[0]}; input name: {info.name}"
        )
    if not expected.compatible(ov.PartialShape(dims)):
        raise ServingError(
            Code.INVALID_SHAPE,
            f"Expected: {shape_text(info.dims())}; Actual: {shape_text(dims)}; input name: {info.name}",
        )


def _check_count(instance: ModelVersion, got: int) -> None:
    if got == 0 or got != len(instance.inputs):
        raise ServingError(Code.INVALID_NO_OF_INPUTS, f"Expected: {len(instance.inputs)}; Actual: {got}")


def tfs_inputs(instance: ModelVersion, request: predict_pb2.PredictRequest) -> dict[str, np.ndarray]:
    """Validate a TFS PredictRequest against the version's inputs; arrays view the request's bytes."""
    _check_count(instance, len(request.inputs))
    arrays: dict[str, np.ndarray] = {}
    for info in instance.inputs:
        if info.name not in request.inputs:
            raise ServingError(Code.INVALID_MISSING_INPUT, f"Required input: {info.name}")
        proto = request.inputs[info.name]
        dims = [d.size for d in proto.tensor_shape.dim]
        if proto.dtype != info.precision.tf_dtype:
            raise ServingError(
                Code.INVALID_PRECISION,
                f"Expected: {info.precision.ovms_name}; Actual: {tf_name(proto.dtype)}; "
                f"input name: {info.name}",
            )
        _check_dims(info, dims)
        count = int(np.prod(dims)) if dims else 1
        dtype = info.precision.numpy
        if proto.tensor_content:
            if len(proto.tensor_content) != count * dtype.itemsize:
                raise ServingError(
                    Code.INVALID_CONTENT_SIZE,
                    f"Expected: {count * dtype.itemsize} bytes; Actual: {len(proto.tensor_content)} bytes; "
                    f"input name: {info.name}",
                )
            array = np.frombuffer(proto.tensor_content, dtype=dtype)
        else:
            array = _counted(_typed_values(proto, dtype), count, dtype, info.name)
        arrays[info.name] = array.reshape(dims)
    return arrays


def _counted(values: np.ndarray, count: int, dtype: np.dtype, name: str) -> np.ndarray:
    """Values given one by one (not as raw content), as an array, when there are exactly `count`."""
    if len(values) != count:
        raise ServingError(
            Code.INVALID_VALUE_COUNT, f"Expected: {count}; Actual: {len(values)}; input name: {name}"
        )
    return np.asarray(values).astype(dtype, copy=False)


def _typed_values(proto: tensor_pb2.TensorProto, dtype: np.dtype) -> np.ndarray:
    if dtype == np.float16:
        return np.asarray(proto.half_val, dtype=np.uint16).view(np.float16)
    field = {
        np.dtype(np.float32): "float_val",
        np.dtype(np.float64): "double_val",
        np.dtype(np.int64): "int64_val",
        np.dtype(np.uint32): "uint32_val",
        np.dtype(np.uint64): "uint64_val",
        np.dtype(np.bool_): "bool_val",
    }.get(dtype, "int_val")
    return np.asarray(getattr(proto, field))


def _status_response(
    model_name: str, version: int, manager: ModelManager
) -> get_model_status_pb2.GetModelStatusResponse:
    model = manager.find(model_name)
    if model is None:
        raise ServingError(Code.MODEL_NAME_MISSING)
    response = get_model_status_pb2.GetModelStatusResponse()
    if version:
        instance = model.get(version)
        if instance is None:
            raise ServingError(Code.MODEL_VERSION_MISSING)
        instances = [instance]
    else:
        instances = model.snapshot()
    for instance in instances:
        entry = response.model_version_status.add()
        entry.version = instance.version
        entry.state = int(instance.state)
        entry.status.error_code = int(instance.error_code)
        entry.status.error_message = instance.error_code.name
    return response


def model_status(
    manager: ModelManager, name: str, version: int
) -> get_model_status_pb2.GetModelStatusResponse:
    return _status_response(name, version, manager)


def ready_instance(manager: ModelManager, name: str, version: int) -> ModelVersion:
    """Version for metadata: present and AVAILABLE right now (waitForLoaded with timeout 0)."""
    instance = manager.get_version(name, version)
    if instance.state == State.AVAILABLE:
        return instance
    if instance.state > State.AVAILABLE:
        raise ServingError(Code.MODEL_VERSION_NOT_LOADED_ANYMORE)
    raise ServingError(Code.MODEL_VERSION_NOT_LOADED_YET)


def tfs_metadata(
    manager: ModelManager, name: str, version: int
) -> get_model_metadata_pb2.GetModelMetadataResponse:
    """GetModelMetadataResponse: one "serving_default" SignatureDef packed under "signature_def"."""
    instance = ready_instance(manager, name, version)
    response = get_model_metadata_pb2.GetModelMetadataResponse()
    response.model_spec.name = instance.name
    response.model_spec.version.value = instance.version
    signature_map = get_model_metadata_pb2.SignatureDefMap()
    signature = signature_map.signature_def["serving_default"]
    for infos, target in ((instance.inputs, signature.inputs), (instance.outputs, signature.outputs)):
        for info in infos:
            entry = target[info.name]
            entry.name = info.name
            entry.dtype = info.precision.tf_dtype
            for d in info.dims():
                entry.tensor_shape.dim.add().size = d
    # Pack by hand: ovmsclient's vendored protos live in package "ovmsclient.serving", while the
    # real server (and TF Serving clients that Unpack) use the type URL of tensorflow.serving.
    packed = response.metadata["signature_def"]
    packed.type_url = SIGNATURE_DEF_MAP_TYPE_URL
    packed.value = signature_map.SerializeToString()
    return response


class _Guarded:
    """Runs a handler, turns ServingError into the real gRPC status, counts the request."""

    def __init__(self, metrics: Metrics, manager: ModelManager) -> None:
        self.metrics = metrics
        self.manager = manager

    def _count(self, name: str, version: int, method: str, ok: bool) -> None:
        model = self.manager.find(name)
        if model is None:  # like OVMS: metrics exist only for served models, labelled by real version
            return
        default = model.default_version() if not version else None
        self.metrics.record(name, default.version if default else version, "gRPC", method, ok=ok)

    def run(
        self, context: grpc.ServicerContext, name: str, version: int, method: str, fn: Callable[[], object]
    ) -> object:
        try:
            result = fn()
        except ServingError as exc:
            self._count(name, version, method, ok=False)
            log.debug("%s %s v%d failed: %s", method, name, version, exc.text)
            _abort(context, exc)
            raise AssertionError("unreachable") from exc  # context.abort raises
        self._count(name, version, method, ok=True)
        return result


class PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer, _Guarded):
    def __init__(self, manager: ModelManager, metrics: Metrics) -> None:
        _Guarded.__init__(self, metrics, manager)

    def Predict(
        self, request: predict_pb2.PredictRequest, context: grpc.ServicerContext
    ) -> predict_pb2.PredictResponse:
        name, version = request.model_spec.name, request.model_spec.version.value
        return self.run(context, name, version, "Predict", lambda: self._predict(request))

    def _predict(self, request: predict_pb2.PredictRequest) -> predict_pb2.PredictResponse:
        if not request.HasField("model_spec"):
            raise ServingError(Code.MODEL_SPEC_MISSING)
        name, version = request.model_spec.name, request.model_spec.version.value
        instance = self.manager.get_version(name, version)
        instance.acquire(WAIT_FOR_LOADED_TIMEOUT_S)
        try:
            inputs = tfs_inputs(instance, request)
            results = instance.infer(inputs)
        finally:
            instance.release()
        response = predict_pb2.PredictResponse()
        response.model_spec.name = name
        response.model_spec.version.value = instance.version
        response.model_spec.signature_name = "serving_default"
        for info, data, shape in results:
            out = response.outputs[info.name]
            out.dtype = info.precision.tf_dtype
            for d in shape:
                out.tensor_shape.dim.add().size = d
            out.tensor_content = data
        return response

    def GetModelMetadata(
        self, request: get_model_metadata_pb2.GetModelMetadataRequest, context: grpc.ServicerContext
    ) -> get_model_metadata_pb2.GetModelMetadataResponse:
        name, version = request.model_spec.name, request.model_spec.version.value
        return self.run(context, name, version, "GetModelMetadata", lambda: self._metadata(request))

    def _metadata(
        self, request: get_model_metadata_pb2.GetModelMetadataRequest
    ) -> get_model_metadata_pb2.GetModelMetadataResponse:
        if not request.HasField("model_spec"):
            raise ServingError(Code.MODEL_SPEC_MISSING)
        if list(request.metadata_field) != ["signature_def"]:
            raise ServingError(Code.INVALID_SIGNATURE_DEF)
        return tfs_metadata(self.manager, request.model_spec.name, request.model_spec.version.value)


class ModelService(model_service_pb2_grpc.ModelServiceServicer, _Guarded):
    def __init__(self, manager: ModelManager, metrics: Metrics) -> None:
        _Guarded.__init__(self, metrics, manager)

    def GetModelStatus(
        self, request: get_model_status_pb2.GetModelStatusRequest, context: grpc.ServicerContext
    ) -> get_model_status_pb2.GetModelStatusResponse:
        name, version = request.model_spec.name, request.model_spec.version.value
        return self.run(
            context, name, version, "GetModelStatus", lambda: model_status(self.manager, name, version)
        )


def _kserve_version(text: str) -> int:
    if not text:
        return 0
    if not text.isdigit():
        raise ServingError(Code.MODEL_VERSION_INVALID_FORMAT)
    return int(text)


def kserve_metadata(manager: ModelManager, name: str, version: int) -> kfs.ModelMetadataResponse:
    instance = ready_instance(manager, name, version)
    model = manager.find(name)
    assert model is not None
    response = kfs.ModelMetadataResponse(name=name, platform="OpenVINO")
    response.versions.extend(str(v.version) for v in model.snapshot() if v.state == State.AVAILABLE)
    for infos, target in ((instance.inputs, response.inputs), (instance.outputs, response.outputs)):
        for info in infos:
            target.add(name=info.name, datatype=info.precision.kserve, shape=info.dims())
    return response


class KServeService(kfs_grpc.GRPCInferenceServiceServicer, _Guarded):
    def __init__(self, manager: ModelManager, metrics: Metrics, is_ready: Callable[[], bool]) -> None:
        _Guarded.__init__(self, metrics, manager)
        self.is_ready = is_ready

    def ServerLive(
        self, request: kfs.ServerLiveRequest, context: grpc.ServicerContext
    ) -> kfs.ServerLiveResponse:
        return kfs.ServerLiveResponse(live=True)

    def ServerReady(
        self, request: kfs.ServerReadyRequest, context: grpc.ServicerContext
    ) -> kfs.ServerReadyResponse:
        return kfs.ServerReadyResponse(ready=self.is_ready())

    def ModelReady(
        self, request: kfs.ModelReadyRequest, context: grpc.ServicerContext
    ) -> kfs.ModelReadyResponse:
        def ready() -> kfs.ModelReadyResponse:
            instance = self.manager.get_version(request.name, _kserve_version(request.version))
            return kfs.ModelReadyResponse(ready=instance.state == State.AVAILABLE)

        return self.run(context, request.name, 0, "ModelReady", ready)

    def ModelMetadata(
        self, request: kfs.ModelMetadataRequest, context: grpc.ServicerContext
    ) -> kfs.ModelMetadataResponse:
        return self.run(
            context,
            request.name,
            0,
            "ModelMetadata",
            lambda: kserve_metadata(self.manager, request.name, _kserve_version(request.version)),
        )

    def ModelInfer(
        self, request: kfs.ModelInferRequest, context: grpc.ServicerContext
    ) -> kfs.ModelInferResponse:
        return self.run(context, request.model_name, 0, "ModelInfer", lambda: self._infer(request))

    def _infer(self, request: kfs.ModelInferRequest) -> kfs.ModelInferResponse:
        instance = self.manager.get_version(request.model_name, _kserve_version(request.model_version))
        instance.acquire(WAIT_FOR_LOADED_TIMEOUT_S)
        try:
            inputs = self._inputs(instance, request)
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

    @staticmethod
    def _inputs(instance: ModelVersion, request: kfs.ModelInferRequest) -> dict[str, np.ndarray]:
        _check_count(instance, len(request.inputs))
        raw = list(request.raw_input_contents)
        if raw and any(t.HasField("contents") for t in request.inputs):
            raise ServingError(Code.INVALID_MESSAGE_STRUCTURE)
        by_name = {t.name: (i, t) for i, t in enumerate(request.inputs)}
        arrays: dict[str, np.ndarray] = {}
        for info in instance.inputs:
            if info.name not in by_name:
                raise ServingError(Code.INVALID_MISSING_INPUT, f"Required input: {info.name}")
            index, tensor = by_name[info.name]
            precision = from_kserve(tensor.datatype)
            if precision is None or precision.tf_dtype != info.precision.tf_dtype:
                raise ServingError(
                    Code.INVALID_PRECISION,
                    f"Expected: {info.precision.ovms_name}; Actual: {tensor.datatype}; "
                    f"input name: {info.name}",
                )
            dims = list(tensor.shape)
            _check_dims(info, dims)
            count = int(np.prod(dims)) if dims else 1
            dtype = info.precision.numpy
            if raw:
                buffer = raw[index] if index < len(raw) else b""
                if len(buffer) != count * dtype.itemsize:
                    raise ServingError(
                        Code.INVALID_CONTENT_SIZE,
                        f"Expected: {count * dtype.itemsize} bytes; Actual: {len(buffer)} bytes; "
                        f"input name: {info.name}",
                    )
                array = np.frombuffer(buffer, dtype=dtype)
            else:
                array = _counted(_kserve_values(tensor.contents, dtype), count, dtype, info.name)
            arrays[info.name] = array.reshape(dims)
        return arrays


def _kserve_values(contents: kfs.InferTensorContents, dtype: np.dtype) -> np.ndarray:
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


def add_services(
    server: grpc.Server, manager: ModelManager, metrics: Metrics, is_ready: Callable[[], bool]
) -> None:
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
        PredictionService(manager, metrics), server
    )
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelService(manager, metrics), server)
    kfs_grpc.add_GRPCInferenceServiceServicer_to_server(KServeService(manager, metrics, is_ready), server)
