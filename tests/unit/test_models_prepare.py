"""`prepare_models` on a tiny IR model built in the test: layout, checksums, idempotence, failures."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import openvino as ov
import openvino.opset13 as ops
import pytest
import yaml
from click.testing import CliRunner
from rich.console import Console

from launcher.cli import main
from launcher.errors import ExternalError, LauncherError
from launcher.models import ChecksumError, prepare_models, repository_dir
from launcher.models import convert as convert_module
from launcher.models import prepare as prepare_module


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def files_under(path: Path) -> list[Path]:
    return sorted(p for p in path.rglob("*") if p.is_file()) if path.exists() else []


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "cache"
    monkeypatch.setenv("OVMS_LAUNCHER_CACHE", str(path))
    return path


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    """A two-op IR model: y = x * [0, 1, 2, 3], input `x` (alias `x_alias`) with a dynamic batch."""
    folder = tmp_path / "src"
    folder.mkdir()
    x = ops.parameter([-1, 4], np.float32, name="x")
    x.output(0).get_tensor().set_names({"x", "x_alias"})
    y = ops.multiply(x, ops.constant(np.arange(4, dtype=np.float32)))
    y.output(0).get_tensor().set_names({"y"})
    ov.save_model(ov.Model([y], [x], "tiny"), str(folder / "tiny.xml"), compress_to_fp16=False)
    return folder / "tiny.xml"


def entry_for(xml: Path, **changes: object) -> dict:
    entry = {
        "name": "tiny",
        "version": 1,
        "source": {"path": xml.name},
        "sha256": sha256(xml),
        "weights_sha256": sha256(xml.with_suffix(".bin")),
        "format": "ir",
        "tensor_names": {"x_alias": "input"},
        "reshape": {"input": [1, 4]},
        "layout": {"input": "NC"},
    }
    entry.update(changes)
    return entry


def write_manifest(folder: Path, *entries: dict) -> Path:
    path = folder / "manifest.yaml"
    path.write_text(yaml.safe_dump({"models": list(entries)}), encoding="utf-8")
    return path


def quiet() -> tuple[Console, io.StringIO]:
    buffer = io.StringIO()
    return Console(file=buffer, width=200), buffer


class Counter:
    def __init__(self, monkeypatch: pytest.MonkeyPatch, module: object, name: str) -> None:
        self.calls = 0
        original = getattr(module, name)

        def counted(*args: object, **kwargs: object) -> object:
            self.calls += 1
            return original(*args, **kwargs)

        monkeypatch.setattr(module, name, counted)


class Served:
    """Files served over HTTP on loopback, counting the requests."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.requests: list[str] = []
        served = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                served.requests.append(self.path)
                body = served.files.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


@pytest.fixture
def http() -> Iterator[Served]:
    served = Served()
    yield served
    served.close()


def test_prepare_lays_out_ir_with_checksums_and_recipe(cache: Path, tiny: Path) -> None:
    manifest = write_manifest(tiny.parent, entry_for(tiny))
    console, out = quiet()
    previous = os.umask(0o077)
    try:
        (model,) = prepare_models(manifest, console=console)
    finally:
        os.umask(previous)

    target = cache / "models" / "tiny" / "1"
    assert repository_dir() == cache / "models"
    assert (model.name, model.version, model.path, model.changed) == ("tiny", 1, target, True)
    assert sorted(p.name for p in target.iterdir()) == [
        "checksums.sha256",
        "model.bin",
        "model.xml",
        "source.json",
    ]
    lines = (target / "checksums.sha256").read_text().splitlines()
    assert lines == [
        f"{sha256(target / 'model.xml')}  model.xml",
        f"{sha256(target / 'model.bin')}  model.bin",
    ]
    if shutil.which("sha256sum"):
        subprocess.run(["sha256sum", "--check", "--strict", "checksums.sha256"], cwd=target, check=True)
    recorded = json.loads((target / "source.json").read_text())
    assert recorded["recipe"]["sha256"] == sha256(tiny)
    assert recorded["recipe"]["converter"].startswith("openvino ")
    assert recorded["source"] == {"path": "tiny.xml"}
    # readable by the server's own (non-root) user, whatever the umask
    for folder in (target, target.parent, cache / "models"):
        assert folder.stat().st_mode & 0o777 == 0o755
    assert {p.stat().st_mode & 0o777 for p in target.iterdir()} == {0o644}
    # nothing but the version directory beside it (no staging leftovers)
    assert [p.name for p in target.parent.iterdir()] == ["1"]

    # renamed, reshaped and laid out as the manifest asked, as OVMS will see it
    saved = ov.Core().read_model(str(target / "model.xml"))
    assert saved.input(0).get_any_name() == "input"
    assert saved.input(0).get_names() == {"input"}
    assert str(saved.input(0).get_partial_shape()) == "[1,4]"
    assert saved.input(0).get_node().get_layout() == ov.Layout("NC")
    assert [(t.name, t.dtype, t.shape) for t in model.inputs] == [("input", "float32", "[1,4]")]
    assert [(t.name, t.dtype, t.shape) for t in model.outputs] == [("y", "float32", "[1,4]")]
    result = ov.Core().compile_model(saved, "CPU")(np.ones((1, 4), np.float32))
    np.testing.assert_array_equal(result["y"], [[0, 1, 2, 3]])
    assert "tiny v1: prepared from ir" in out.getvalue()


def test_second_run_downloads_and_converts_nothing(
    cache: Path, tiny: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    manifest = write_manifest(tiny.parent, entry_for(tiny))
    fetches = Counter(monkeypatch, prepare_module, "fetch_sources")
    converts = Counter(monkeypatch, convert_module, "convert_to_ir")
    (first,) = prepare_models(manifest, console=quiet()[0])
    assert first.changed
    assert (fetches.calls, converts.calls) == (1, 1)
    stamps = {p: p.stat().st_mtime_ns for p in files_under(cache / "models")}

    console, out = quiet()
    (second,) = prepare_models(manifest, console=console)
    assert not second.changed
    assert second.path == first.path
    assert (fetches.calls, converts.calls) == (1, 1)
    assert {p: p.stat().st_mtime_ns for p in files_under(cache / "models")} == stamps
    assert out.getvalue().strip() == "tiny v1: up to date"
    assert [(t.name, t.shape) for t in second.inputs] == [("input", "[1,4]")]


def test_url_source_is_downloaded_once_and_reused(cache: Path, tiny: Path, http: Served) -> None:
    http.files["/m/tiny.xml"] = tiny.read_bytes()
    http.files["/m/tiny.bin"] = tiny.with_suffix(".bin").read_bytes()
    manifest = write_manifest(tiny.parent, entry_for(tiny, source={"url": http.url("/m/tiny.xml")}))

    (model,) = prepare_models(manifest, console=quiet()[0])
    assert model.changed
    assert sorted(http.requests) == ["/m/tiny.bin", "/m/tiny.xml"]
    downloaded = files_under(cache / "downloads")
    assert sorted(p.name for p in downloaded) == ["tiny.bin", "tiny.xml"]
    assert {p.parent.name for p in downloaded} == {sha256(tiny), sha256(tiny.with_suffix(".bin"))}

    (again,) = prepare_models(manifest, console=quiet()[0])
    assert not again.changed
    assert len(http.requests) == 2

    # the repository is lost: rebuilt from the verified download cache, no new request
    shutil.rmtree(cache / "models")
    (rebuilt,) = prepare_models(manifest, console=quiet()[0])
    assert rebuilt.changed
    assert len(http.requests) == 2
    assert (rebuilt.path / "model.xml").is_file()


def test_checksum_mismatch_names_model_expected_and_actual(cache: Path, tiny: Path) -> None:
    wrong = "0" * 64
    manifest = write_manifest(tiny.parent, entry_for(tiny, sha256=wrong))
    with pytest.raises(ChecksumError) as caught:
        prepare_models(manifest, console=quiet()[0])
    error = caught.value
    assert f"tiny v1: sha256 mismatch for {tiny}: expected {wrong}, actual {sha256(tiny)}" in error.message
    assert error.file == str(manifest.resolve())
    assert error.key == "models[0].source"
    assert error.exit_code == 1
    assert files_under(cache / "models") == []


def test_checksum_mismatch_on_download_leaves_nothing_behind(cache: Path, tiny: Path, http: Served) -> None:
    http.files["/tiny.xml"] = tiny.read_bytes() + b"<!-- tampered -->"
    http.files["/tiny.bin"] = tiny.with_suffix(".bin").read_bytes()
    manifest = write_manifest(tiny.parent, entry_for(tiny, source={"url": http.url("/tiny.xml")}))
    with pytest.raises(ChecksumError) as caught:
        prepare_models(manifest, console=quiet()[0])
    actual = hashlib.sha256(http.files["/tiny.xml"]).hexdigest()
    assert f"expected {sha256(tiny)}, actual {actual}" in caught.value.message
    assert caught.value.message.startswith("tiny v1: sha256 mismatch for http://127.0.0.1:")
    assert files_under(cache / "downloads") == []  # no .part file, no unverified file
    assert files_under(cache / "models") == []


def test_download_error_names_the_url(cache: Path, tiny: Path, http: Served) -> None:
    manifest = write_manifest(tiny.parent, entry_for(tiny, source={"url": http.url("/missing.xml")}))
    with pytest.raises(ExternalError) as caught:
        prepare_models(manifest, console=quiet()[0])
    assert "tiny v1: download of http://127.0.0.1:" in caught.value.message
    assert "404" in caught.value.message
    assert files_under(cache / "downloads") == []


def test_truncated_model_fails_clearly_and_leaves_nothing(cache: Path, tiny: Path) -> None:
    text = tiny.read_bytes()
    tiny.write_bytes(text[: len(text) // 2])  # the manifest trusts this broken file (its sha256 matches)
    manifest = write_manifest(tiny.parent, entry_for(tiny))
    with pytest.raises(ExternalError) as caught:
        prepare_models(manifest, console=quiet()[0])
    message = caught.value.message
    assert message.startswith("tiny v1: cannot read tiny.xml as ir: ")
    assert "valid ir model" in (caught.value.fix or "")
    assert files_under(cache / "models") == []


def test_truncated_weights_fail_clearly(cache: Path, tiny: Path) -> None:
    weights = tiny.with_suffix(".bin")
    weights.write_bytes(weights.read_bytes()[:5])
    manifest = write_manifest(tiny.parent, entry_for(tiny))
    with pytest.raises(ExternalError) as caught:
        prepare_models(manifest, console=quiet()[0])
    assert caught.value.message.startswith("tiny v1: ")
    assert files_under(cache / "models") == []


def test_failed_rebuild_keeps_the_previous_version(cache: Path, tiny: Path) -> None:
    manifest = write_manifest(tiny.parent, entry_for(tiny))
    (model,) = prepare_models(manifest, console=quiet()[0])
    before = {p.name: p.read_bytes() for p in files_under(model.path)}

    broken = tiny.parent / "broken.xml"
    broken.write_bytes(tiny.read_bytes()[:100])
    shutil.copy(tiny.with_suffix(".bin"), broken.with_suffix(".bin"))
    write_manifest(tiny.parent, entry_for(broken, source={"path": "broken.xml"}))
    with pytest.raises(ExternalError):
        prepare_models(manifest, console=quiet()[0])
    assert {p.name: p.read_bytes() for p in files_under(model.path)} == before
    assert [p.name for p in model.path.parent.iterdir()] == ["1"]


def test_changed_recipe_or_damaged_files_are_rebuilt(cache: Path, tiny: Path) -> None:
    manifest = write_manifest(tiny.parent, entry_for(tiny))
    (model,) = prepare_models(manifest, console=quiet()[0])

    write_manifest(tiny.parent, entry_for(tiny, reshape={"input": [2, 4]}))
    console, out = quiet()
    (reshaped,) = prepare_models(manifest, console=console)
    assert reshaped.changed
    assert "tiny v1: stale in the cache" in out.getvalue()
    assert [t.shape for t in reshaped.inputs] == ["[2,4]"]

    weights = model.path / "model.bin"
    weights.write_bytes(b"\0" * weights.stat().st_size)
    console, out = quiet()
    (repaired,) = prepare_models(manifest, console=console)
    assert repaired.changed
    assert "tiny v1: corrupt in the cache" in out.getvalue()
    subprocess.run(["sha256sum", "--check", "--quiet", "checksums.sha256"], cwd=model.path, check=True)


def test_unknown_tensor_in_reshape_names_the_key(cache: Path, tiny: Path) -> None:
    manifest = write_manifest(tiny.parent, entry_for(tiny, reshape={"image": [1, 4]}))
    with pytest.raises(LauncherError) as caught:
        prepare_models(manifest, console=quiet()[0])
    error = caught.value
    assert error.key == "models[0].reshape"
    assert error.file == str(manifest.resolve())
    assert "reshape names tensor 'image', which the model does not have" in error.message
    assert error.fix == "known input tensors: input"
    assert files_under(cache / "models") == []


def test_only_named_models_are_prepared(cache: Path, tiny: Path) -> None:
    manifest = write_manifest(tiny.parent, entry_for(tiny), entry_for(tiny, name="other"))
    prepared = prepare_models(manifest, ["other"], console=quiet()[0])
    assert [m.name for m in prepared] == ["other"]
    assert sorted(p.name for p in (cache / "models").iterdir()) == ["other"]


def test_cli_prepare_and_list(cache: Path, tiny: Path) -> None:
    manifest = write_manifest(tiny.parent, entry_for(tiny))
    runner = CliRunner()
    listed = runner.invoke(main, ["models", "list", "--manifest", str(manifest)], terminal_width=200)
    assert listed.exit_code == 0, listed.output
    assert "missing" in listed.output

    first = runner.invoke(main, ["models", "prepare", "--manifest", str(manifest)])
    assert first.exit_code == 0, first.output
    assert "1 prepared, 0 up to date" in first.stderr
    second = runner.invoke(main, ["models", "prepare", "--manifest", str(manifest), "tiny"])
    assert second.exit_code == 0, second.output
    assert "tiny v1: up to date" in second.stderr
    assert "0 prepared, 1 up to date" in second.stderr

    listed = runner.invoke(main, ["models", "list", "--manifest", str(manifest)], terminal_width=200)
    assert "ready" in listed.output


def test_cli_reports_bad_manifest_with_exit_code_2(cache: Path, tiny: Path) -> None:
    manifest = write_manifest(tiny.parent, entry_for(tiny, sha256="xyz"))
    result = CliRunner().invoke(main, ["models", "prepare", "--manifest", str(manifest)])
    assert result.exit_code == 2
    assert "models[0].sha256: must be a sha256: 64 hexadecimal digits" in result.stderr
