"""Helpers of the conformance suite: model repositories, config.json writing, waiting, SSD decoding."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import requests

# Tensor names as OpenVINO reports them for the project's prepared models (models/README.md).
PERSON = "person-detection"
FACE = "face-detection"
PERSON_INPUT = "image_tensor:0"
PERSON_OUTPUTS = {
    "detection_boxes:0": [1, 100, 4],
    "detection_classes:0": [1, 100],
    "detection_scores:0": [1, 100],
    "num_detections:0": [1],
}
FACE_INPUT = "input"
FACE_OUTPUTS = {"regressors": [1, 896, 16], "classificators": [1, 896, 1]}
PERSON_CLASS = 1  # COCO "person" in the SSD label map

TARGET_ENV = "OVMS_CONFORMANCE_TARGET"
REST_ENV = "OVMS_CONFORMANCE_REST"
TFS_TARGET_ENV = "OVMS_CONFORMANCE_TFS_TARGET"
TFS_REST_ENV = "OVMS_CONFORMANCE_TFS_REST"
# the release the double emulates for the TFS tests: the TFS API was removed in 2026.3
TFS_RELEASE = "2025.4"


def _external(target_env: str, rest_env: str) -> tuple[str, str] | None:
    grpc_address = os.environ.get(target_env)
    if not grpc_address:
        return None
    rest = os.environ.get(rest_env)
    if not rest:
        raise RuntimeError(f"{target_env} is set: set {rest_env}=host:port of the same server's REST API too")
    return grpc_address, f"http://{rest}"


def external_target() -> tuple[str, str] | None:
    """(grpc host:port, rest base URL) of an operator-started server, or None to use the double."""
    return _external(TARGET_ENV, REST_ENV)


def external_tfs_target() -> tuple[str, str] | None:
    """The same for a server of a release before 2026.3 (TFS API), or None."""
    return _external(TFS_TARGET_ENV, TFS_REST_ENV)


def model_entry(name: str, base_path: str, **extra: object) -> dict:
    return {"config": {"name": name, "base_path": base_path, **extra}}


def write_config(repo: Path, entries: list[dict], raw: str | None = None) -> Path:
    """Write repo/config.json atomically (write beside, then rename) so a poll never sees half a file."""
    target = repo / "config.json"
    tmp = repo / ".config.json.tmp"
    tmp.write_text(raw if raw is not None else json.dumps({"model_config_list": entries}, indent=2))
    tmp.chmod(0o644)
    tmp.replace(target)
    return target


TINY_INPUT = "x"
TINY_OUTPUT = "y"


def tiny_model(repo: Path, name: str, shape: list[int], version: int = 1) -> Path:
    """A one-operation IR (y = relu(x), FP32 of `shape`) in repo/name/version, for input-shape cases
    the project's models do not have."""
    import openvino as ov
    from openvino import opset13 as ops

    x = ops.parameter(shape, np.float32, name=TINY_INPUT)
    y = ops.relu(x)
    y.output(0).get_tensor().set_names({TINY_OUTPUT})
    target = repo / name / str(version)
    target.mkdir(parents=True)
    ov.save_model(ov.Model([y], [x], name), str(target / "model.xml"))
    for path in [repo / name, target, *target.iterdir()]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return target


def wait_until(
    what: str, predicate: Callable[[], bool], timeout: float = 30.0, interval: float = 0.2
) -> None:
    """Poll predicate until it holds; fail with `what` if it does not within timeout."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except Exception as exc:  # the condition may raise until it holds (e.g. model not found yet)
            last_error = exc
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for: {what} (last error: {last_error!r})")


def config_states(rest_url: str) -> dict[str, dict[str, str]]:
    """GET /v1/config as {model: {version: state}}."""
    body = requests.get(f"{rest_url}/v1/config", timeout=5).json()
    return {
        name: {entry["version"]: entry["state"] for entry in data["model_version_status"]}
        for name, data in body.items()
    }


@dataclass(frozen=True)
class Detection:
    label: int
    score: float
    box: tuple[float, float, float, float]  # ymin, xmin, ymax, xmax (normalised)


def iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    """Intersection over union of two (ymin, xmin, ymax, xmax) boxes."""
    height = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    width = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = height * width
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def kserve_outputs(result: object) -> dict[str, np.ndarray]:
    """tritonclient InferResult -> {output name: array}."""
    return {t.name: result.as_numpy(t.name) for t in result.get_response().outputs}  # type: ignore[attr-defined]


def decode_ssd(outputs: dict[str, np.ndarray]) -> list[Detection]:
    """Minimal decoding of the TF Object Detection API outputs of the person detector."""
    count = int(outputs["num_detections:0"].reshape(-1)[0])
    boxes = outputs["detection_boxes:0"].reshape(-1, 4)[:count]
    classes = outputs["detection_classes:0"].reshape(-1)[:count]
    scores = outputs["detection_scores:0"].reshape(-1)[:count]
    return [
        Detection(round(float(c)), float(s), tuple(float(v) for v in b))
        for b, c, s in zip(boxes, classes, scores, strict=True)
    ]


class NotFound(Exception):
    """The server answered NOT_FOUND (unknown or retired model or version)."""


class ServerClient:
    """What the reload, rollout and start-up tests ask of a server, over today's API: KServe v2 gRPC
    (tritonclient) for inference and metadata, REST /v1/config for every version's state (OVMS 2026.3
    and later have no gRPC status call). NOT_FOUND raises NotFound; an unreachable server raises the
    built-in ConnectionError or TimeoutError."""

    def __init__(self, grpc_address: str, rest_url: str) -> None:
        import tritonclient.grpc as grpcclient

        self.grpc = grpcclient.InferenceServerClient(grpc_address)
        self.rest_url = rest_url

    @staticmethod
    def _raise(exc: Exception) -> None:
        status = getattr(exc, "status", lambda: None)()
        message = getattr(exc, "message", lambda: str(exc))()
        if status == "StatusCode.NOT_FOUND":
            raise NotFound(message) from exc
        if status == "StatusCode.DEADLINE_EXCEEDED":
            raise TimeoutError(message) from exc
        if status == "StatusCode.UNAVAILABLE":
            raise ConnectionError(message) from exc
        raise exc

    def predict(
        self, inputs: dict[str, np.ndarray], model: str, version: int = 0, timeout: float = 30
    ) -> dict[str, np.ndarray]:
        import tritonclient.grpc as grpcclient
        from tritonclient.utils import InferenceServerException, np_to_triton_dtype

        data = []
        for name, array in inputs.items():
            tensor = grpcclient.InferInput(name, list(array.shape), np_to_triton_dtype(array.dtype))
            tensor.set_data_from_numpy(array)
            data.append(tensor)
        try:
            result = self.grpc.infer(
                model, data, model_version=str(version) if version else "", client_timeout=timeout
            )
        except InferenceServerException as exc:
            self._raise(exc)
        return kserve_outputs(result)

    def get_model_metadata(self, model: str, version: int = 0) -> dict:
        from tritonclient.utils import InferenceServerException

        try:
            meta = self.grpc.get_model_metadata(model, str(version) if version else "", client_timeout=30)
        except InferenceServerException as exc:
            self._raise(exc)
        return {
            "model_version": version or max(int(v) for v in meta.versions),
            "inputs": {t.name: {"shape": list(t.shape), "dtype": t.datatype} for t in meta.inputs},
            "outputs": {t.name: {"shape": list(t.shape), "dtype": t.datatype} for t in meta.outputs},
        }

    def get_model_status(self, model: str, version: int = 0, timeout: float = 10) -> dict[int, dict]:
        try:
            body = requests.get(f"{self.rest_url}/v1/config", timeout=timeout).json()
        except requests.Timeout as exc:
            raise TimeoutError(str(exc)) from exc
        except requests.RequestException as exc:
            raise ConnectionError(str(exc)) from exc
        if model not in body:
            raise NotFound(f"Model with requested name is not found: {model}")
        states = {
            int(entry["version"]): {
                "state": entry["state"],
                "error_code": entry["status"]["error_code"],
                "error_message": entry["status"]["error_message"],
            }
            for entry in body[model]["model_version_status"]
        }
        if version:
            if version not in states:
                raise NotFound(f"Model with requested version is not found: {model} v{version}")
            return {version: states[version]}
        return states


def server_client(server: object) -> ServerClient:
    return ServerClient(server.grpc_address, server.rest_url)  # type: ignore[attr-defined]
