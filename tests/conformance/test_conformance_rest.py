"""REST endpoints driven with requests, as a monitoring system or load balancer would."""

from __future__ import annotations

import ovmsclient
import pytest
import requests
from conformance_support import FACE, PERSON


def _get(target, path: str) -> requests.Response:
    return requests.get(f"{target.rest_url}{path}", timeout=10)


@pytest.mark.parametrize("path", ["/v2/health/live", "/v2/health/ready"])
def test_health_endpoints_answer_200_with_empty_body(target, path):
    response = _get(target, path)
    assert response.status_code == 200
    assert response.content == b""


def test_v1_config_lists_every_model_available(target):
    body = _get(target, "/v1/config").json()
    expected = {"version": "1", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": "OK"}}
    for name in (PERSON, FACE):
        assert body[name] == {"model_version_status": [expected]}


def test_v1_model_status(target):
    response = _get(target, f"/v1/models/{PERSON}")
    assert response.status_code == 200
    assert response.json()["model_version_status"][0]["state"] == "AVAILABLE"
    assert _get(target, f"/v1/models/{PERSON}/versions/1").json() == response.json()


@pytest.mark.parametrize("path", [f"/v2/models/{PERSON}/ready", f"/v2/models/{FACE}/versions/1/ready"])
def test_kserve_model_ready(target, path):
    response = _get(target, path)
    assert response.status_code == 200
    assert response.content == b""


@pytest.mark.parametrize(
    "path",
    ["/v1/models/no-such-model", f"/v1/models/{PERSON}/versions/42", "/v2/models/no-such-model/ready"],
)
def test_unknown_model_or_version_is_404(target, path):
    response = _get(target, path)
    assert response.status_code == 404
    assert "not found" in response.json()["error"]


def test_kserve_model_metadata(target):
    body = _get(target, f"/v2/models/{PERSON}").json()
    assert body["name"] == PERSON
    assert body["versions"] == ["1"]
    assert body["inputs"] == [{"name": "image_tensor:0", "datatype": "UINT8", "shape": [1, 300, 300, 3]}]
    assert {o["name"]: o["shape"] for o in body["outputs"]} == {
        "detection_boxes:0": [1, 100, 4],
        "detection_classes:0": [1, 100],
        "detection_scores:0": [1, 100],
        "num_detections:0": [1],
    }


def test_ovmsclient_http_status_and_metadata(target):
    http = ovmsclient.make_http_client(target.rest_url.removeprefix("http://"))
    available = {"state": "AVAILABLE", "error_code": 0, "error_message": "OK"}
    assert http.get_model_status(PERSON) == {1: available}
    meta = http.get_model_metadata(PERSON)
    assert meta["model_version"] == 1
    assert meta["inputs"] == {"image_tensor:0": {"shape": [1, 300, 300, 3], "dtype": "DT_UINT8"}}


def test_tfs_rest_metadata_names_the_tensorflow_type(target):
    body = _get(target, f"/v1/models/{FACE}/versions/1/metadata").json()
    assert body["modelSpec"]["name"] == FACE
    signature = body["metadata"]["signature_def"]
    assert signature["@type"] == "type.googleapis.com/tensorflow.serving.SignatureDefMap"
    assert set(signature["signatureDef"]["serving_default"]["outputs"]) == {"regressors", "classificators"}
