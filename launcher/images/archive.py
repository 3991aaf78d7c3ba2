"""`launcher images save DIR` / `load DIR`: image archives for hosts that reach no registry."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from launcher.errors import ExternalError, LauncherError
from launcher.images import docker_cli
from launcher.images.specs import ImageSpec
from launcher.models.fetch import sha256_file

MANIFEST = "images.json"


def _archive_name(spec: ImageSpec) -> str:
    return f"{spec.name}.tar"


def read_manifest(folder: Path) -> dict:
    path = folder / MANIFEST
    if not path.is_file():
        raise LauncherError(
            "no image manifest here",
            file=path,
            fix="point at a folder written by `launcher images save DIR`",
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise LauncherError(f"not valid JSON: {exc}", file=path, fix="save the images again") from exc
    if not isinstance(data.get("images"), list):
        raise LauncherError("missing list", file=path, key="images", fix="save the images again")
    return data


def save(specs: list[ImageSpec], folder: Path, say: Callable[[str], None]) -> list[Path]:
    """Write one tar per image plus images.json (tag, image id, sha256); unchanged images are kept."""
    folder.mkdir(parents=True, exist_ok=True)
    try:
        previous = {e["name"]: e for e in read_manifest(folder)["images"]}
    except LauncherError:
        previous = {}
    entries, written = [], []
    for spec in specs:
        image = docker_cli.image_id(spec.tag)
        if not image:
            raise LauncherError(
                f"image {spec.tag} is not built",
                key=spec.name,
                fix=f"run `launcher images build {spec.name}` first",
            )
        target = folder / _archive_name(spec)
        old = previous.get(spec.name)
        if old and old.get("id") == image and target.is_file() and sha256_file(target) == old.get("sha256"):
            say(f"{spec.tag}: archive up to date")
            entries.append(old)
            continue
        say(f"{spec.tag}: saving to {target}")
        part = target.with_name(target.name + ".part")
        docker_cli.run(["save", "--output", str(part), spec.tag])
        part.replace(target)
        entries.append({"name": spec.name, "tag": spec.tag, "id": image, "file": target.name,
                        "sha256": sha256_file(target)})  # fmt: skip
        written.append(target)
    manifest = folder / MANIFEST
    tmp = manifest.with_name(MANIFEST + ".part")
    tmp.write_text(json.dumps({"images": entries}, indent=2) + "\n", encoding="utf-8")
    tmp.replace(manifest)
    return written


def load(folder: Path, say: Callable[[str], None], names: list[str] | None = None) -> list[str]:
    """Verify each archive's sha256 and load it unless the engine already has that image id."""
    loaded = []
    for entry in read_manifest(folder)["images"]:
        if names and entry["name"] not in names:
            continue
        if docker_cli.image_id(entry["tag"]) == entry["id"]:
            say(f"{entry['tag']}: already loaded")
            continue
        archive = folder / entry["file"]
        if not archive.is_file():
            raise LauncherError("archive missing", file=archive, fix="save the images again")
        actual = sha256_file(archive)
        if actual != entry["sha256"]:
            raise LauncherError(
                f"checksum mismatch: expected sha256 {entry['sha256']}, got {actual}",
                file=archive,
                fix="the archive is damaged or was changed: copy it again or re-run `images save`",
            )
        say(f"{entry['tag']}: loading {archive.name}")
        proc = docker_cli.run(["load", "--input", str(archive)], check=False)
        if proc.returncode != 0:
            raise ExternalError(f"docker load of {archive} failed: {proc.stderr.strip()}")
        loaded.append(entry["tag"])
    return loaded
