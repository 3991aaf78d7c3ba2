"""KServe v2 gRPC API through tritonclient (the client OVMS's own KServe samples use): server and model
metadata, readiness, inference with raw tensors and with encoded (JPEG/PNG) images, the real server's
error codes and messages, and the TFS API gone since 2026.3."""

from __future__ import annotations

import cv2
import grpc
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from conformance_support import (
    FACE,
    FACE_INPUT,
    FACE_OUTPUTS,
    PERSON,
    PERSON_INPUT,
    PERSON_OUTPUTS,
    TINY_INPUT,
    TINY_OUTPUT,
    model_entry,
    tiny_model,
    write_config,
)
from ovmsclient.tfs_compat.protos.tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc
from tritonclient.grpc import service_pb2, service_pb2_grpc
from tritonclient.utils import InferenceServerException


def _jpeg(size: tuple[int, int] = (300, 300)) -> bytes:
    image = np.zeros((size[1], size[0], 3), np.uint8)
    cv2.rectangle(image, (40, 40), (size[0] - 40, size[1] - 40), (30, 120, 200), -1)
    return cv2.imencode(".jpg", image)[1].tobytes()


def _person_bytes(*images: bytes, shape: list[int] | None = None) -> grpcclient.InferInput:
    data = grpcclient.InferInput(PERSON_INPUT, shape or [len(images)], "BYTES")
    data.set_data_from_numpy(np.array(list(images), dtype=np.object_).reshape(shape or [len(images)]))
    return data


def _refused(kserve, model: str, inputs: list[grpcclient.InferInput]) -> InferenceServerException:
    with pytest.raises(InferenceServerException) as caught:
        kserve.infer(model, inputs, client_timeout=30)
    return caught.value


@pytest.fixture(scope="module")
def stub(target):
    """The raw gRPC stub, for requests tritonclient would not build (bytes_contents, mixed contents)."""
    channel = grpc.insecure_channel(target.grpc_address)
    yield service_pb2_grpc.GRPCInferenceServiceStub(channel)
    channel.close()


def test_server_live_ready_and_metadata(kserve):
    assert kserve.is_server_live() and kserve.is_server_ready()
    metadata = kserve.get_server_metadata()
    assert metadata.name == "OpenVINO Model Server"
    assert metadata.version and metadata.version.split(".")[0].isdigit()


def test_model_ready(kserve):
    assert kserve.is_model_ready(PERSON)
    assert kserve.is_model_ready(FACE, "1")
    with pytest.raises(InferenceServerException) as caught:
        kserve.is_model_ready("no-such-model")
    assert caught.value.status() == "StatusCode.NOT_FOUND"


def test_model_metadata(kserve):
    meta = kserve.get_model_metadata(FACE)
    assert (meta.name, list(meta.versions), meta.platform) == (FACE, ["1"], "OpenVINO")
    assert [(t.name, t.datatype, list(t.shape)) for t in meta.inputs] == [
        (FACE_INPUT, "FP32", [1, 128, 128, 3])
    ]
    assert {t.name: list(t.shape) for t in meta.outputs} == FACE_OUTPUTS


def test_infer_raw_tensor(kserve):
    data = grpcclient.InferInput(FACE_INPUT, [1, 128, 128, 3], "FP32")
    data.set_data_from_numpy(np.zeros((1, 128, 128, 3), np.float32))
    result = kserve.infer(FACE, [data], model_version="1", request_id="req-1", client_timeout=30)
    response = result.get_response()
    assert (response.id, response.model_version) == ("req-1", "1")
    assert {t.name: list(t.shape) for t in response.outputs} == FACE_OUTPUTS
    assert all(t.datatype == "FP32" for t in response.outputs)
    assert result.as_numpy("regressors").shape == (1, 896, 16)


@pytest.mark.parametrize("size", [(300, 300), (512, 384)], ids=["model-size", "resized-by-server"])
@pytest.mark.parametrize("codec", [".jpg", ".png"])
def test_infer_an_encoded_image(kserve, codec, size):
    image = np.full((size[1], size[0], 3), 90, np.uint8)
    data = _person_bytes(cv2.imencode(codec, image)[1].tobytes())
    result = kserve.infer(PERSON, [data], client_timeout=30)
    assert {t.name: list(t.shape) for t in result.get_response().outputs} == PERSON_OUTPUTS


def test_encoded_images_in_bytes_contents(stub):
    request = service_pb2.ModelInferRequest(model_name=PERSON)
    tensor = request.inputs.add(name=PERSON_INPUT, datatype="BYTES", shape=[1])
    tensor.contents.bytes_contents.append(_jpeg())
    response = stub.ModelInfer(request, timeout=30)
    assert [t.name for t in response.outputs] == list(PERSON_OUTPUTS)


def test_a_corrupt_image_is_refused_and_the_server_keeps_serving(kserve):
    error = _refused(kserve, PERSON, [_person_bytes(b"\xff\xd8 not a jpeg at all")])
    # the real server's gRPC table lacks IMAGE_PARSING_FAILED: it answers UNKNOWN "Unknown error"
    assert (error.status(), error.message()) == ("StatusCode.UNKNOWN", "Unknown error")
    assert (
        kserve.infer(PERSON, [_person_bytes(_jpeg())], client_timeout=30).as_numpy("num_detections:0")
        is not None
    )


@pytest.mark.parametrize(
    ("images", "shape", "message"),
    [
        ((_jpeg(), _jpeg()), [2], "Invalid input batch size - Expected: 1; Actual: 0"),
        (
            (_jpeg(),),
            [1, 1],
            "Invalid number of shape dimensions - Expected number of input shape dimensions: 1",
        ),
        ((_jpeg(),), [2], "Invalid input batch size"),
    ],
    ids=["two-images", "rank-2", "count-differs"],
)
def test_bad_binary_requests_are_invalid_argument(kserve, images, shape, message):
    if len(images) != int(np.prod(shape)):
        data = _person_bytes(*images)
        data.set_shape(shape)  # one image declared as two
    else:
        data = _person_bytes(*images, shape=shape)
    error = _refused(kserve, PERSON, [data])
    assert error.status() == "StatusCode.INVALID_ARGUMENT"
    assert message in error.message()


@pytest.mark.own_server
def test_binary_inputs_need_an_image_input_with_nhwc_layout(ovms_double, make_repository):
    """Rank 2: no IMAGE hint, NOT_IMPLEMENTED (UNKNOWN "Unknown error" over gRPC); a rank-4 input laid
    out NCHW: UNSUPPORTED_LAYOUT; the same input served as NHWC:NCHW takes images."""
    repo = make_repository([])
    tiny_model(repo, "flat", [1, 4])
    tiny_model(repo, "planar", [1, 3, 8, 8])
    tiny_model(repo, "planar-nhwc", [1, 3, 8, 8])
    write_config(
        repo,
        [
            model_entry("flat", "flat"),
            model_entry("planar", "planar", layout="NCHW"),
            model_entry("planar-nhwc", "planar-nhwc", layout="NHWC:NCHW"),
        ],
    )
    server = ovms_double(repo)
    client = grpcclient.InferenceServerClient(server.grpc_address)

    def image(model: str) -> list[grpcclient.InferInput]:
        data = grpcclient.InferInput(TINY_INPUT, [1], "BYTES")
        data.set_data_from_numpy(np.array([_jpeg((8, 8))], dtype=np.object_))
        return [data]

    flat = _refused(client, "flat", image("flat"))
    assert (flat.status(), flat.message()) == ("StatusCode.UNKNOWN", "Unknown error")
    planar = _refused(client, "planar", image("planar"))
    assert planar.status() == "StatusCode.INVALID_ARGUMENT"
    assert planar.message() == "Received binary image input but resource not configured to accept NHWC layout"
    result = client.infer("planar-nhwc", image("planar-nhwc"), client_timeout=30)
    assert result.as_numpy(TINY_OUTPUT).shape == (1, 3, 8, 8)


def test_contents_and_raw_contents_together_are_refused(stub):
    request = service_pb2.ModelInferRequest(model_name=FACE)
    tensor = request.inputs.add(name=FACE_INPUT, datatype="FP32", shape=[1, 128, 128, 3])
    tensor.contents.fp32_contents.append(0.0)
    request.raw_input_contents.append(np.zeros((1, 128, 128, 3), np.float32).tobytes())
    with pytest.raises(grpc.RpcError) as caught:
        stub.ModelInfer(request, timeout=30)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "Detected buffer in InferInputTensor contents for input: input" in caught.value.details()


@pytest.mark.parametrize(
    ("datatype", "array", "message"),
    [
        (
            "UINT8",
            np.zeros((1, 128, 128, 3), np.uint8),
            "Invalid input precision - Expected: FP32; Actual: UINT8",
        ),
        ("FP32", np.zeros((1, 64, 64, 3), np.float32), "Invalid input shape"),
        ("FP32", np.zeros((2, 128, 128, 3), np.float32), "Invalid input batch size"),
    ],
    ids=["dtype", "shape", "batch"],
)
def test_bad_raw_input_is_invalid_argument(kserve, datatype, array, message):
    data = grpcclient.InferInput(FACE_INPUT, list(array.shape), datatype)
    data.set_data_from_numpy(array)
    error = _refused(kserve, FACE, [data])
    assert error.status() == "StatusCode.INVALID_ARGUMENT"
    assert message in error.message()
    assert "input name: input name: input" in error.message()  # as the real KServe validator words it


def test_unknown_model_and_version_are_not_found(kserve):
    error = _refused(kserve, "no-such-model", [_person_bytes(_jpeg())])
    assert error.status() == "StatusCode.NOT_FOUND"
    assert error.message() == "Mediapipe graph definition with requested name is not found"
    with pytest.raises(InferenceServerException, match="Model with requested version is not found"):
        kserve.get_model_metadata(PERSON, model_version="42")


def test_model_stream_infer_serves_only_mediapipe_graphs(stub):
    request = service_pb2.ModelInferRequest(model_name=PERSON)
    with pytest.raises(grpc.RpcError) as caught:
        list(stub.ModelStreamInfer(iter([request]), timeout=30))
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    assert caught.value.details() == "Mediapipe graph definition with requested name is not found"


def test_the_tfs_api_is_gone(target):
    """OVMS 2026.3 removed TensorFlow Serving's gRPC services: a server without them answers UNIMPLEMENTED."""
    channel = grpc.insecure_channel(target.grpc_address)
    try:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        request = predict_pb2.PredictRequest()
        request.model_spec.name = PERSON
        with pytest.raises(grpc.RpcError) as caught:
            stub.Predict(request, timeout=10)
        assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED
    finally:
        channel.close()
