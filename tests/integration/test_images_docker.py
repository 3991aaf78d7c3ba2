"""Cached builds and air-gap archives against the real Docker engine."""

from __future__ import annotations

import subprocess
import uuid

import pytest

from launcher.errors import LauncherError
from launcher.images import archive, build_images, docker_cli, specs
from launcher.images.specs import OFFLINE_BASE, ImageSpec

pytestmark = pytest.mark.docker


def _docker(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=False)


@pytest.fixture
def tiny_image(tmp_path, monkeypatch):
    """A one-layer image spec built FROM the offline base, removed afterwards."""
    if not docker_cli.image_id(OFFLINE_BASE):
        pytest.fail(f"{OFFLINE_BASE} missing: run `launcher images build` first")
    monkeypatch.setenv("OVMS_LAUNCHER_CACHE", str(tmp_path / "cache"))
    images_dir = tmp_path / "images"
    (images_dir / "tiny").mkdir(parents=True)
    (images_dir / "tiny" / "Dockerfile").write_text(
        "ARG BASE_IMAGE=debian:bookworm-slim\nFROM ${BASE_IMAGE}\n"
        "LABEL ovms-launcher.test=1\nCOPY hello.txt /hello.txt\nUSER 65534\n"
    )
    (images_dir / "tiny" / "hello.txt").write_text("hello\n")
    monkeypatch.setattr(specs, "IMAGES_DIR", images_dir)
    tag = f"ovms-launcher-test/tiny:{uuid.uuid4().hex[:8]}"
    spec = ImageSpec(name="tiny", tag=tag, public_base="debian:bookworm-slim", python=False)
    yield spec, images_dir / "tiny"
    _docker("rmi", "-f", tag)


def test_second_build_is_skipped_and_a_change_rebuilds(tiny_image):
    spec, folder = tiny_image
    messages: list[str] = []
    first = build_images([spec], offline=True, say=messages.append)
    assert first[0].built and first[0].offline
    image = docker_cli.image_id(spec.tag)
    second = build_images([spec], offline=True, say=messages.append)
    assert not second[0].built
    assert docker_cli.image_id(spec.tag) == image
    assert f"{spec.tag}: up to date" in messages
    (folder / "hello.txt").write_text("changed\n")
    third = build_images([spec], offline=True, say=messages.append)
    assert third[0].built
    assert docker_cli.image_id(spec.tag) != image
    out = _docker("run", "--rm", "--entrypoint", "cat", spec.tag, "/hello.txt")
    assert out.stdout == "changed\n"


def test_save_then_load_restores_the_same_image(tiny_image, tmp_path):
    spec, _ = tiny_image
    build_images([spec], offline=True, say=lambda m: None)
    image = docker_cli.image_id(spec.tag)
    folder = tmp_path / "archives"
    written = archive.save([spec], folder, lambda m: None)
    assert written == [folder / "tiny.tar"]
    assert archive.save([spec], folder, lambda m: None) == []  # unchanged: nothing rewritten
    assert _docker("rmi", spec.tag).returncode == 0
    assert docker_cli.image_id(spec.tag) is None
    assert archive.load(folder, lambda m: None) == [spec.tag]
    assert docker_cli.image_id(spec.tag) == image
    assert archive.load(folder, lambda m: None) == []  # already there


def test_load_refuses_a_damaged_archive(tiny_image, tmp_path):
    spec, _ = tiny_image
    build_images([spec], offline=True, say=lambda m: None)
    folder = tmp_path / "archives"
    archive.save([spec], folder, lambda m: None)
    _docker("rmi", spec.tag)
    with (folder / "tiny.tar").open("ab") as fh:
        fh.write(b"tampered")
    with pytest.raises(LauncherError) as err:
        archive.load(folder, lambda m: None)
    assert "checksum mismatch" in err.value.render()
    assert docker_cli.image_id(spec.tag) is None


def test_save_refuses_an_image_that_is_not_built(tmp_path):
    spec = ImageSpec(name="ghost", tag="ovms-launcher-test/ghost:none", public_base="x", python=False)
    with pytest.raises(LauncherError) as err:
        archive.save([spec], tmp_path, lambda m: None)
    assert "launcher images build ghost" in err.value.render()
