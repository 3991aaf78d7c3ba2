"""The start-up check of the served model against the profile, waiting for the server, and how each
API's errors are told apart (a refused frame vs an unreachable server vs an API the server lacks)."""

from __future__ import annotations

import threading

import grpc
import pytest
from tritonclient.utils import InferenceServerException

from client.backoff import Backoff
from client.decoders import BlazefaceDecoder, SsdDecoder
from client.errors import ApiNotServed, ModelMismatchError
from client.kserve import KServeServer, rejected
from client.profile import BlazefacePostprocess, ModelSpec, Profile, SsdPostprocess
from client.server import check_metadata, make_server, wait_for_metadata
from client.settings import Deployment
from client.tfs import TfsServer

PERSON = ModelSpec(
    name="person-detection",
    version=1,
    input="image_tensor:0",
    size={"width": 300, "height": 300},
    dtype="uint8",
)
PERSON_METADATA = {
    "model_version": 1,
    "inputs": {"image_tensor:0": {"shape": [1, 300, 300, 3], "dtype": "UINT8"}},
    "outputs": {
        "detection_boxes:0": {"shape": [1, 100, 4], "dtype": "FP32"},
        "detection_classes:0": {"shape": [1, 100], "dtype": "FP32"},
        "detection_scores:0": {"shape": [1, 100], "dtype": "FP32"},
        "num_detections:0": {"shape": [1], "dtype": "FP32"},
    },
}


def ssd() -> SsdDecoder:
    return SsdDecoder(SsdPostprocess(type="ssd"))


def test_matching_metadata_resolves_outputs():
    resolved = check_metadata(PERSON_METADATA, PERSON, ssd())
    assert resolved["boxes"] == "detection_boxes:0"


def test_dynamic_dimensions_match_anything():
    metadata = {
        **PERSON_METADATA,
        "inputs": {"image_tensor:0": {"shape": [-1, -1, -1, 3], "dtype": "UINT8"}},
    }
    check_metadata(metadata, PERSON, ssd())


def test_wrong_input_name_names_both():
    spec = PERSON.model_copy(update={"input": "images"})
    with pytest.raises(ModelMismatchError) as info:
        check_metadata(PERSON_METADATA, spec, ssd())
    message = info.value.render()
    assert message.startswith("model.input: ")
    assert "'images'" in message and "image_tensor:0" in message


def test_wrong_shape_and_dtype_name_both_sides():
    face = {
        "model_version": 1,
        "inputs": {"image_tensor:0": {"shape": [1, 128, 128, 3], "dtype": "FP32"}},
        "outputs": {},
    }
    with pytest.raises(ModelMismatchError) as info:
        check_metadata(face, PERSON, ssd())
    message = info.value.render()
    assert "model.size" in message
    assert "[1, 300, 300, 3] UINT8 (NHWC)" in message
    assert "[1, 128, 128, 3] FP32" in message
    assert "'person-detection' version 1" in message


def test_dtype_only_mismatch_points_at_dtype():
    spec = PERSON.model_copy(update={"dtype": "float32"})
    with pytest.raises(ModelMismatchError, match=r"^model.dtype: "):
        check_metadata(PERSON_METADATA, spec, ssd())


def test_nchw_profile_expects_channels_first():
    spec = PERSON.model_copy(update={"layout": "NCHW"})
    with pytest.raises(ModelMismatchError, match=r"\[1, 3, 300, 300\]"):
        check_metadata(PERSON_METADATA, spec, ssd())


def test_missing_decoder_output_is_reported():
    with pytest.raises(ModelMismatchError, match="has no output for 'regressors'"):
        check_metadata(PERSON_METADATA, PERSON, BlazefaceDecoder(BlazefacePostprocess(type="blazeface")))


def profile(api: str = "kserve", encoding: str = "raw") -> Profile:
    return Profile.model_validate(
        {
            "api": api,
            "model": {**PERSON.model_dump(), "color": "bgr"},
            "postprocess": {"type": "ssd"},
            "inputs": ["/media/sample.mp4"],
            "encoding": encoding,
            "pipeline": {"request_timeout_s": 1.0},
        }
    )


@pytest.mark.parametrize("api", ["kserve", "tfs"])
def test_waiting_for_an_absent_server_keeps_trying_until_stopped(api):
    # port 1 on loopback: nothing listens there, every attempt fails at once
    server = make_server(Deployment("127.0.0.1:1", None, None), profile(api))  # type: ignore[arg-type]
    assert isinstance(server, KServeServer if api == "kserve" else TfsServer)
    stop = threading.Event()
    attempts = []

    class CountingBackoff(Backoff):
        def next_delay(self) -> float:
            attempts.append(1)
            if len(attempts) >= 3:
                stop.set()
            return 0.01

    assert server.wait_for_metadata(stop, CountingBackoff(0.01, 0.01)) is None
    assert len(attempts) == 3


@pytest.mark.parametrize(
    ("status", "refused"),
    [
        ("StatusCode.INVALID_ARGUMENT", True),  # a wrong input
        ("StatusCode.NOT_FOUND", True),  # a version just retired
        ("StatusCode.UNKNOWN", True),  # OVMS's "Unknown error": an image it cannot decode
        (None, True),  # the client library could not build the request
        ("StatusCode.UNAVAILABLE", False),  # server or proxy down
        ("StatusCode.DEADLINE_EXCEEDED", False),
        ("StatusCode.INTERNAL", False),  # a proxy answering HTTP 400 (refused client certificate)
    ],
)
def test_kserve_errors_tell_a_refused_frame_from_an_outage(status, refused):
    assert rejected(InferenceServerException("x", status=status)) is refused


class _Unimplemented(grpc.RpcError):
    def code(self) -> grpc.StatusCode:
        return grpc.StatusCode.UNIMPLEMENTED


class _ScriptedClient:
    """An API adapter whose metadata call fails the way a server without the API answers."""

    address = "ovms:9000"
    model = PERSON
    tls = False

    def __init__(self, adapter: type, error: BaseException) -> None:
        self.api_name = adapter.api_name
        self.not_served_hint = adapter.not_served_hint
        self._not_served = adapter.not_served
        self.error = error
        self.calls = 0

    def metadata(self, timeout_s: float) -> dict:
        self.calls += 1
        raise self.error

    def reconnect(self) -> None:
        pass

    def not_served(self, exc: BaseException) -> bool:
        return self._not_served(self, exc)


def _ovmsclient_error() -> ConnectionError:
    """What ovmsclient raises for UNIMPLEMENTED: ConnectionError, raised while handling the RpcError."""
    try:
        try:
            raise _Unimplemented()
        except grpc.RpcError:
            raise ConnectionError("Error occurred during handling the request: ") from None
    except ConnectionError as exc:
        exc.__context__ = _Unimplemented()
        return exc


@pytest.mark.parametrize(
    ("adapter", "error", "names"),
    [
        (TfsServer, _ovmsclient_error(), ["TensorFlow Serving", "removed", "api: kserve"]),
        (
            KServeServer,
            InferenceServerException("", status="StatusCode.UNIMPLEMENTED"),
            ["KServe v2", "api: tfs"],
        ),
    ],
)
def test_a_server_without_the_profiles_api_fails_at_once_naming_the_fix(adapter, error, names):
    client = _ScriptedClient(adapter, error)
    with pytest.raises(ApiNotServed) as caught:
        wait_for_metadata(client, 1.0, threading.Event(), Backoff(0.01, 0.01))  # type: ignore[arg-type]
    assert client.calls == 1
    text = caught.value.render()
    assert text.startswith("api: the server at ovms:9000 does not serve")
    for name in names:
        assert name in text
