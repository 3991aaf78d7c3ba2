"""TensorFlow Serving gRPC services (PredictionService, ModelService) of OVMS releases before 2026.3.

OVMS 2026.3 removed them (model_server #4349); the double registers them only when it emulates an
older release (ovms_double.release), built on ovmsclient's vendored TFS protos."""

from __future__ import annotations

import logging
from collections.abc import Callable

import grpc
import numpy as np
from google.protobuf import json_format
from ovmsclient.tfs_compat.protos.tensorflow.core.framework import tensor_pb2
from ovmsclient.tfs_compat.protos.tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from .kfs_frontend import abort, counted, ready_instance
from .manager import ModelManager
from .servable import WAIT_FOR_LOADED_TIMEOUT_S, ModelVersion
from .status import Code, ServingError
from .tensors import tf_name
from .validation import check_count, check_dims, check_negative, from_raw, from_values, precision_error

log = logging.getLogger("serving")

SIGNATURE_DEF_MAP_TYPE_URL = "type.googleapis.com/tensorflow.serving.SignatureDefMap"


def tfs_inputs(instance: ModelVersion, request: predict_pb2.PredictRequest) -> dict[str, np.ndarray]:
    """Validate a TFS PredictRequest against the version's inputs; arrays view the request's bytes."""
    check_count(instance, len(request.inputs))
    arrays: dict[str, np.ndarray] = {}
    for info in instance.inputs:
        if info.name not in request.inputs:
            raise ServingError(Code.INVALID_MISSING_INPUT, f"Required input: {info.name}")
        proto = request.inputs[info.name]
        dims = [d.size for d in proto.tensor_shape.dim]
        if proto.dtype != info.precision.tf_dtype:
            raise precision_error(info, tf_name(proto.dtype), info.name)
        check_negative(dims, info.name, kserve=False)
        check_dims(info, dims, info.name)
        dtype = info.precision.numpy
        if proto.tensor_content:
            arrays[info.name] = from_raw(proto.tensor_content, dims, dtype, info.name)
        else:
            arrays[info.name] = from_values(_typed_values(proto, dtype), dims, dtype, info.name)
    return arrays


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


def model_status_json(manager: ModelManager, name: str, version: int) -> dict:
    """REST GET /v1/models/{name}[/versions/{v}]: the status as the real server prints it."""
    return json_format.MessageToDict(
        model_status(manager, name, version), always_print_fields_with_no_presence=True
    )


def metadata_json(manager: ModelManager, name: str, version: int) -> dict:
    """REST GET /v1/models/{name}[/versions/{v}]/metadata."""
    response = tfs_metadata(manager, name, version)
    packed = response.metadata["signature_def"]
    signature_map = get_model_metadata_pb2.SignatureDefMap.FromString(packed.value)
    as_json = {"always_print_fields_with_no_presence": True}
    return {
        "modelSpec": json_format.MessageToDict(response.model_spec, **as_json),
        "metadata": {
            "signature_def": {"@type": packed.type_url, **json_format.MessageToDict(signature_map, **as_json)}
        },
    }


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


def _resolve(manager: ModelManager, name: str, version: int) -> ModelVersion | None:
    """The version a request is counted on; None when the name or version is unknown (not counted)."""
    try:
        return manager.get_version(name, version)
    except ServingError:
        return None


class _Counted:
    """Runs a handler on the version it resolves to, counts it, turns ServingError into gRPC status."""

    method = ""

    def __init__(self, manager: ModelManager) -> None:
        self.manager = manager

    def run(self, context: grpc.ServicerContext, name: str, version: int, fn: Callable[[], object]) -> object:
        try:
            instance = _resolve(self.manager, name, version)
            if instance is None:
                return fn()
            return counted(instance, "gRPC", self.method, fn, timed=self.method == "Predict")
        except ServingError as exc:
            log.debug("%s %s v%d failed: %s", self.method, name, version, exc.text)
            abort(context, exc)
            raise AssertionError("unreachable") from exc  # context.abort raises


class PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, manager: ModelManager) -> None:
        self.manager = manager
        self._predict_call = _Counted(manager)
        self._predict_call.method = "Predict"
        self._metadata_call = _Counted(manager)
        self._metadata_call.method = "GetModelMetadata"

    def Predict(
        self, request: predict_pb2.PredictRequest, context: grpc.ServicerContext
    ) -> predict_pb2.PredictResponse:
        name, version = request.model_spec.name, request.model_spec.version.value
        return self._predict_call.run(context, name, version, lambda: self._predict(request))  # type: ignore[return-value]

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
        return self._metadata_call.run(context, name, version, lambda: self._metadata(request))  # type: ignore[return-value]

    def _metadata(
        self, request: get_model_metadata_pb2.GetModelMetadataRequest
    ) -> get_model_metadata_pb2.GetModelMetadataResponse:
        if not request.HasField("model_spec"):
            raise ServingError(Code.MODEL_SPEC_MISSING)
        if list(request.metadata_field) != ["signature_def"]:
            raise ServingError(Code.INVALID_SIGNATURE_DEF)
        return tfs_metadata(self.manager, request.model_spec.name, request.model_spec.version.value)


class ModelService(model_service_pb2_grpc.ModelServiceServicer):
    def __init__(self, manager: ModelManager) -> None:
        self.manager = manager
        self._call = _Counted(manager)
        self._call.method = "GetModelStatus"

    def GetModelStatus(
        self, request: get_model_status_pb2.GetModelStatusRequest, context: grpc.ServicerContext
    ) -> get_model_status_pb2.GetModelStatusResponse:
        name, version = request.model_spec.name, request.model_spec.version.value
        return self._call.run(  # type: ignore[return-value]
            context, name, version, lambda: model_status(self.manager, name, version)
        )


def add_services(server: grpc.Server, manager: ModelManager) -> None:
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(PredictionService(manager), server)
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelService(manager), server)
