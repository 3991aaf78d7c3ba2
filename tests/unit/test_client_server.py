"""The start-up check of the served model against the profile, and waiting for the server."""

from __future__ import annotations

import threading

import pytest

from client.backoff import Backoff
from client.decoders import BlazefaceDecoder, SsdDecoder
from client.errors import ModelMismatchError
from client.profile import BlazefacePostprocess, ModelSpec, SsdPostprocess
from client.server import ModelServer, check_metadata
from client.settings import Deployment

PERSON = ModelSpec(
    name="person-detection",
    version=1,
    input="image_tensor:0",
    size={"width": 300, "height": 300},
    dtype="uint8",
)
PERSON_METADATA = {
    "model_version": 1,
    "inputs": {"image_tensor:0": {"shape": [1, 300, 300, 3], "dtype": "DT_UINT8"}},
    "outputs": {
        "detection_boxes:0": {"shape": [1, 100, 4], "dtype": "DT_FLOAT"},
        "detection_classes:0": {"shape": [1, 100], "dtype": "DT_FLOAT"},
        "detection_scores:0": {"shape": [1, 100], "dtype": "DT_FLOAT"},
        "num_detections:0": {"shape": [1], "dtype": "DT_FLOAT"},
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
        "inputs": {"image_tensor:0": {"shape": [-1, -1, -1, 3], "dtype": "DT_UINT8"}},
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
        "inputs": {"image_tensor:0": {"shape": [1, 128, 128, 3], "dtype": "DT_FLOAT"}},
        "outputs": {},
    }
    with pytest.raises(ModelMismatchError) as info:
        check_metadata(face, PERSON, ssd())
    message = info.value.render()
    assert "model.size" in message
    assert "[1, 300, 300, 3] DT_UINT8 (NHWC)" in message
    assert "[1, 128, 128, 3] DT_FLOAT" in message
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


def test_waiting_for_an_absent_server_keeps_trying_until_stopped():
    # port 1 on loopback: nothing listens there, every attempt fails at once
    server = ModelServer(Deployment("127.0.0.1:1", None, None), PERSON, timeout_s=1.0)  # type: ignore[arg-type]
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
