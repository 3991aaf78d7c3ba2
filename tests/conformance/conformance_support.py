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


def external_target() -> tuple[str, str] | None:
    """(grpc host:port, rest base URL) of an operator-started server, or None to use the double."""
    grpc_address = os.environ.get(TARGET_ENV)
    if not grpc_address:
        return None
    rest = os.environ.get(REST_ENV)
    if not rest:
        raise RuntimeError(f"{TARGET_ENV} is set: set {REST_ENV}=host:port of the same server's REST API too")
    return grpc_address, f"http://{rest}"


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
