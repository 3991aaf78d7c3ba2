"""REST endpoints driven with requests, as a monitoring system or load balancer would: health, KServe
v2 (metadata, readiness, infer with JSON and with the binary data extension), /v1/config, /metrics;
the TFS REST API on a release before 2026.3."""

from __future__ import annotations

import json
import struct

import cv2
import numpy as np
import ovmsclient
import pytest
import requests
from conformance_support import FACE, FACE_INPUT, PERSON, PERSON_INPUT
from prometheus_client.parser import text_string_to_metric_families


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


def test_v1_model_status(tfs_target):
    target = tfs_target
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
    ("path", "tfs"),
    [
        ("/v1/models/no-such-model", True),
        (f"/v1/models/{PERSON}/versions/42", True),
        ("/v2/models/no-such-model/ready", False),
    ],
)
def test_unknown_model_or_version_is_404(target, tfs_target, path, tfs):
    response = _get(tfs_target if tfs else target, path)
    assert response.status_code == 404
    assert "not found" in response.json()["error"]


@pytest.mark.parametrize("path", [f"/v1/models/{PERSON}/versions/1", f"/v1/models/{FACE}/metadata"])
def test_the_tfs_rest_api_is_gone(target, path):
    """Since 2026.3 /v1/models is the OpenAI-style model list: the TFS URLs find no model."""
    response = _get(target, path)
    assert response.status_code == 500
    assert response.json() == {"error": "Model not found"}


def test_server_metadata(target):
    body = _get(target, "/v2").json()
    assert body["name"] == "OpenVINO Model Server"
    assert body["version"].split(".")[0].isdigit()


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


def test_ovmsclient_http_status_and_metadata(tfs_target):
    http = ovmsclient.make_http_client(tfs_target.rest_url.removeprefix("http://"))
    available = {"state": "AVAILABLE", "error_code": 0, "error_message": "OK"}
    assert http.get_model_status(PERSON) == {1: available}
    meta = http.get_model_metadata(PERSON)
    assert meta["model_version"] == 1
    assert meta["inputs"] == {"image_tensor:0": {"shape": [1, 300, 300, 3], "dtype": "DT_UINT8"}}


def test_tfs_rest_metadata_names_the_tensorflow_type(tfs_target):
    body = _get(tfs_target, f"/v1/models/{FACE}/versions/1/metadata").json()
    assert body["modelSpec"]["name"] == FACE
    signature = body["metadata"]["signature_def"]
    assert signature["@type"] == "type.googleapis.com/tensorflow.serving.SignatureDefMap"
    assert set(signature["signatureDef"]["serving_default"]["outputs"]) == {"regressors", "classificators"}


def test_kserve_rest_infer_with_json(target):
    body = {
        "id": "rest-1",
        "inputs": [
            {"name": FACE_INPUT, "shape": [1, 128, 128, 3], "datatype": "FP32", "data": [0.0] * 49152}
        ],
    }
    response = requests.post(f"{target.rest_url}/v2/models/{FACE}/infer", json=body, timeout=30)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert (answer["model_name"], answer["id"], answer["model_version"]) == (FACE, "rest-1", "1")
    shapes = {o["name"]: (o["shape"], o["datatype"], len(o["data"])) for o in answer["outputs"]}
    assert shapes == {
        "regressors": ([1, 896, 16], "FP32", 14336),
        "classificators": ([1, 896, 1], "FP32", 896),
    }


def test_kserve_rest_infer_with_a_binary_image(target):
    """The binary data extension: JSON header of Inference-Header-Content-Length bytes, then the image
    with its 4-byte little-endian length, as raw_input_contents carries it."""
    image = cv2.imencode(".jpg", np.full((300, 300, 3), 60, np.uint8))[1].tobytes()
    header = json.dumps(
        {
            "inputs": [{"name": PERSON_INPUT, "shape": [1], "datatype": "BYTES"}],
            "outputs": [{"name": "num_detections:0", "parameters": {"binary_data": True}}],
        }
    ).encode()
    response = requests.post(
        f"{target.rest_url}/v2/models/{PERSON}/infer",
        data=header + struct.pack("<I", len(image)) + image,
        headers={"Inference-Header-Content-Length": str(len(header))},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    length = int(response.headers["inference-header-content-length"])
    answer = json.loads(response.content[:length])
    counts = {o["name"]: o for o in answer["outputs"]}
    assert counts["num_detections:0"]["parameters"] == {"binary_data_size": 4}
    assert len(response.content) == length + 4
    assert len(counts["detection_scores:0"]["data"]) == 100


def test_metrics_are_prometheus_text(target):
    response = _get(target, "/metrics")
    if response.status_code == 400:
        pytest.skip("the target runs without --metrics_enable")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    families = {f.name: f.type for f in text_string_to_metric_families(response.text)}
    assert families["ovms_requests_success"] == "counter"
    assert families["ovms_request_time_us"] == "histogram"
    assert families["ovms_streams"] == "gauge"
    assert requests.post(f"{target.rest_url}/metrics", timeout=10).status_code == 406
