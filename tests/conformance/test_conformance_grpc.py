"""TFS gRPC API through ovmsclient: metadata, status, predict, and the real server's error codes."""

from __future__ import annotations

import numpy as np
import pytest
from conformance_support import FACE, FACE_INPUT, FACE_OUTPUTS, PERSON, PERSON_INPUT, PERSON_OUTPUTS
from ovmsclient.tfs_compat.base.errors import InvalidInputError, ModelNotFoundError


def _blank_person_input() -> dict[str, np.ndarray]:
    return {PERSON_INPUT: np.zeros((1, 300, 300, 3), np.uint8)}


def test_person_detection_metadata(client):
    meta = client.get_model_metadata(PERSON)
    assert meta["model_version"] == 1
    assert meta["inputs"] == {PERSON_INPUT: {"shape": [1, 300, 300, 3], "dtype": "DT_UINT8"}}
    assert meta["outputs"] == {
        name: {"shape": shape, "dtype": "DT_FLOAT"} for name, shape in PERSON_OUTPUTS.items()
    }


def test_face_detection_metadata_for_explicit_version(client):
    meta = client.get_model_metadata(FACE, 1)
    assert meta["model_version"] == 1
    assert meta["inputs"] == {FACE_INPUT: {"shape": [1, 128, 128, 3], "dtype": "DT_FLOAT"}}
    assert meta["outputs"] == {
        name: {"shape": shape, "dtype": "DT_FLOAT"} for name, shape in FACE_OUTPUTS.items()
    }


@pytest.mark.parametrize("name", [PERSON, FACE])
def test_model_status_available(client, name):
    status = client.get_model_status(name)
    assert status == {1: {"state": "AVAILABLE", "error_code": 0, "error_message": "OK"}}
    assert client.get_model_status(name, 1) == status


def test_predict_person_detection_returns_four_outputs(client):
    outputs = client.predict(_blank_person_input(), PERSON)
    assert {name: list(array.shape) for name, array in outputs.items()} == PERSON_OUTPUTS
    assert all(array.dtype == np.float32 for array in outputs.values())
    assert 0 <= int(outputs["num_detections:0"][0]) <= 100


def test_predict_face_detection(client):
    outputs = client.predict({FACE_INPUT: np.zeros((1, 128, 128, 3), np.float32)}, FACE, 1)
    assert {name: list(array.shape) for name, array in outputs.items()} == FACE_OUTPUTS


@pytest.mark.parametrize("call", ["predict", "get_model_metadata", "get_model_status"])
def test_unknown_model_is_not_found(client, call):
    args = (_blank_person_input(), "no-such-model") if call == "predict" else ("no-such-model",)
    with pytest.raises(ModelNotFoundError, match="Model with requested name is not found"):
        getattr(client, call)(*args)


@pytest.mark.parametrize("call", ["predict", "get_model_metadata", "get_model_status"])
def test_unknown_version_is_not_found(client, call):
    args = (_blank_person_input(), PERSON, 42) if call == "predict" else (PERSON, 42)
    with pytest.raises(ModelNotFoundError, match="Model with requested version is not found"):
        getattr(client, call)(*args)


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ({PERSON_INPUT: np.zeros((1, 200, 200, 3), np.uint8)}, "Invalid input shape"),
        ({PERSON_INPUT: np.zeros((2, 300, 300, 3), np.uint8)}, "Invalid input batch size"),
        ({PERSON_INPUT: np.zeros((1, 300, 300), np.uint8)}, "Invalid number of shape dimensions"),
        ({PERSON_INPUT: np.zeros((1, 300, 300, 3), np.float32)}, "Invalid input precision"),
        ({"no_such_input": np.zeros((1, 300, 300, 3), np.uint8)}, "Missing input with specific name"),
        (
            {PERSON_INPUT: np.zeros((1, 300, 300, 3), np.uint8), "extra": np.zeros((1,), np.uint8)},
            "Invalid number of inputs",
        ),
    ],
    ids=["shape", "batch", "rank", "dtype", "input-name", "input-count"],
)
def test_bad_input_is_invalid_argument(client, inputs, message):
    with pytest.raises(InvalidInputError, match=message):
        client.predict(inputs, PERSON)
