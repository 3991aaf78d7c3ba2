"""Image specs, build-context fingerprints, wheelhouse pruning and archive manifests (no engine)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from launcher.errors import LauncherError
from launcher.images import archive, context, select_images, wheelhouse
from launcher.images.specs import IMAGES


def test_select_images_all_in_stable_order():
    # the execution environment (in_default=False) is built by name only
    assert [s.name for s in select_images(())] == [n for n, s in IMAGES.items() if s.in_default]


def test_select_unknown_image_names_the_choices():
    with pytest.raises(LauncherError) as err:
        select_images(("ovms-dubble",))
    text = err.value.render()
    assert "unknown image ovms-dubble" in text
    assert "ovms-double" in text and "tls-proxy" in text


def test_every_dockerfile_takes_a_base_image_argument():
    for spec in IMAGES.values():
        text = spec.dockerfile.read_text(encoding="utf-8")
        assert f"ARG BASE_IMAGE={spec.public_base}" in text, spec.name
        assert "USER " in text, f"{spec.name} must not run as root"


def _ctx(tmp_path: Path) -> Path:
    ctx = tmp_path / "ctx"
    (ctx / "wheels").mkdir(parents=True)
    (ctx / "Dockerfile").write_text("FROM x\n")
    (ctx / "app.py").write_text("print(1)\n")
    (ctx / "wheels" / "a-1.0-py3-none-any.whl").write_bytes(b"12345")
    return ctx


def test_fingerprint_is_stable_and_sees_every_input(tmp_path):
    ctx = _ctx(tmp_path)
    first = context.fingerprint(ctx, "sha256:base", {"BASE_IMAGE": "b"})
    assert first == context.fingerprint(ctx, "sha256:base", {"BASE_IMAGE": "b"})
    assert first != context.fingerprint(ctx, "sha256:other", {"BASE_IMAGE": "b"})
    assert first != context.fingerprint(ctx, "sha256:base", {"BASE_IMAGE": "c"})
    (ctx / "app.py").write_text("print(2)\n")
    second = context.fingerprint(ctx, "sha256:base", {"BASE_IMAGE": "b"})
    assert second != first
    (ctx / "wheels" / "a-1.0-py3-none-any.whl").write_bytes(b"123456")
    third = context.fingerprint(ctx, "sha256:base", {"BASE_IMAGE": "b"})
    assert third != second
    (ctx / "app.py").chmod(0o755)
    assert context.fingerprint(ctx, "sha256:base", {"BASE_IMAGE": "b"}) != third


def test_fingerprint_ignores_modification_times(tmp_path):
    import os

    ctx = _ctx(tmp_path)
    first = context.fingerprint(ctx, "id", {})
    os.utime(ctx / "app.py", (1, 1))
    assert context.fingerprint(ctx, "id", {}) == first


def test_assemble_copies_sources_without_caches(tmp_path, monkeypatch):
    monkeypatch.setenv("OVMS_LAUNCHER_CACHE", str(tmp_path / "cache"))
    spec = IMAGES["client"]
    wheels = tmp_path / "wh"
    wheels.mkdir()
    (wheels / "x-1-py3-none-any.whl").write_bytes(b"w")
    ctx = context.assemble(spec, wheels)
    assert (ctx / "Dockerfile").is_file()
    assert (ctx / "wheels" / "x-1-py3-none-any.whl").read_bytes() == b"w"
    assert (ctx / "client").is_dir()
    assert not list(ctx.rglob("__pycache__"))


def test_wheelhouse_prune_keeps_only_the_resolution(tmp_path):
    for name in ("numpy-2.0-cp311.whl", "numpy-1.0-cp311.whl", "grpcio-1-cp311.whl"):
        (tmp_path / name).write_bytes(b"x")
    output = (
        "Collecting numpy\n  Saved ./numpy-2.0-cp311.whl\n"
        f"  File was already downloaded {tmp_path}/grpcio-1-cp311.whl\n"
    )
    wheelhouse._prune(tmp_path, output)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["grpcio-1-cp311.whl", "numpy-2.0-cp311.whl"]


def test_wheelhouse_prune_keeps_all_when_output_is_unknown(tmp_path):
    (tmp_path / "a.whl").write_bytes(b"x")
    wheelhouse._prune(tmp_path, "something else entirely\n")
    assert (tmp_path / "a.whl").exists()


def test_target_platform_is_manylinux_for_bookworm():
    assert wheelhouse.target_platform().startswith("manylinux_2_36_")


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (None, "no image manifest here"),
        ("{not json", "not valid JSON"),
        (json.dumps({"images": "x"}), "images: missing list"),
    ],
)
def test_archive_manifest_errors_name_the_file(tmp_path, content, needle):
    if content is not None:
        (tmp_path / "images.json").write_text(content)
    with pytest.raises(LauncherError) as err:
        archive.read_manifest(tmp_path)
    text = err.value.render()
    assert needle in text
    assert str(tmp_path / "images.json") in text
