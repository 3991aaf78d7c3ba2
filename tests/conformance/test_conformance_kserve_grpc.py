"""KServe predict-v2 gRPC API (ovmsclient does not speak it): driven with the stubs compiled from
tests/ovms_double/kserve/grpc_service.proto, which follows the public KServe specification."""

from __future__ import annotations

import grpc
import numpy as np
import pytest
from conformance_support import FACE, FACE_INPUT, FACE_OUTPUTS, PERSON
from ovms_double.kserve import grpc_service_pb2 as kfs
from ovms_double.kserve import grpc_service_pb2_grpc as kfs_grpc


@pytest.fixture(scope="module")
def stub(target):
    channel = grpc.insecure_channel(target.grpc_address)
    yield kfs_grpc.GRPCInferenceServiceStub(channel)
    channel.close()


def test_server_live_and_ready(stub):
    assert stub.ServerLive(kfs.ServerLiveRequest(), timeout=10).live
    assert stub.ServerReady(kfs.ServerReadyRequest(), timeout=10).ready


def test_model_ready(stub):
    assert stub.ModelReady(kfs.ModelReadyRequest(name=PERSON), timeout=10).ready
    assert stub.ModelReady(kfs.ModelReadyRequest(name=FACE, version="1"), timeout=10).ready
    with pytest.raises(grpc.RpcError) as caught:
        stub.ModelReady(kfs.ModelReadyRequest(name="no-such-model"), timeout=10)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


def test_model_metadata(stub):
    meta = stub.ModelMetadata(kfs.ModelMetadataRequest(name=FACE), timeout=10)
    assert meta.name == FACE
    assert list(meta.versions) == ["1"]
    assert [(t.name, t.datatype, list(t.shape)) for t in meta.inputs] == [
        (FACE_INPUT, "FP32", [1, 128, 128, 3])
    ]
    assert {t.name: list(t.shape) for t in meta.outputs} == FACE_OUTPUTS


def test_model_infer_raw_contents(stub):
    request = kfs.ModelInferRequest(model_name=FACE, id="req-1")
    request.inputs.add(name=FACE_INPUT, datatype="FP32", shape=[1, 128, 128, 3])
    request.raw_input_contents.append(np.zeros((1, 128, 128, 3), np.float32).tobytes())
    response = stub.ModelInfer(request, timeout=30)
    assert response.id == "req-1"
    assert response.model_version == "1"
    shapes = {t.name: list(t.shape) for t in response.outputs}
    assert shapes == FACE_OUTPUTS
    for tensor, raw in zip(response.outputs, response.raw_output_contents, strict=True):
        assert tensor.datatype == "FP32"
        assert len(raw) == 4 * int(np.prod(tensor.shape))


def test_model_infer_wrong_datatype_is_invalid_argument(stub):
    request = kfs.ModelInferRequest(model_name=FACE)
    request.inputs.add(name=FACE_INPUT, datatype="UINT8", shape=[1, 128, 128, 3])
    request.raw_input_contents.append(np.zeros((1, 128, 128, 3), np.uint8).tobytes())
    with pytest.raises(grpc.RpcError) as caught:
        stub.ModelInfer(request, timeout=30)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
