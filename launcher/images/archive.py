"""`launcher images save DIR` / `load DIR`: image archives for hosts that reach no registry."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Sequence
from pathlib import Path

from launcher.errors import ExternalError, LauncherError
from launcher.images import docker_cli
from launcher.images.specs import ImageSpec
from launcher.models.fetch import sha256_file

MANIFEST = "images.json"
# an image reference `--image` accepts (never an option to docker: no leading '-', no spaces)
_REFERENCE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/:@-]{0,254}$")


def _archive_name(spec: ImageSpec) -> str:
    return f"{spec.name}.tar"


def reference_archive_name(ref: str) -> str:
    """The archive file of any image reference (`--image REF`): its characters outside [A-Za-z0-9._-]
    as '_', plus 8 hex digits of the reference's sha256 (two references never share a file), `.tar`;
    a plain file name of the folder (no '/', no leading dot)."""
    plain = re.sub(r"[^A-Za-z0-9._-]", "_", ref)[:80].lstrip("._-") or "image"
    return f"{plain}-{hashlib.sha256(ref.encode()).hexdigest()[:8]}.tar"


def check_reference(ref: str) -> str:
    if not _REFERENCE.match(ref):
        raise LauncherError(
            f"{ref!r} is not an image reference",
            key="--image",
            fix="give a local image as REPOSITORY[:TAG] or REPOSITORY@sha256:DIGEST (see `docker image ls`)",
        )
    return ref


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


def save(
    specs: list[ImageSpec], folder: Path, say: Callable[[str], None], references: Sequence[str] = ()
) -> list[Path]:
    """Write one tar per image plus images.json (name, tag, image id, archive file, its sha256 and size:
    what `launcher images load` and a deploy with prechecks_images_ship verify); unchanged images are
    kept. `references`: any other local image (the real openvino/model_server image), each listed with
    name and tag = the reference and the archive file reference_archive_name(REF). Images saved before
    into the folder and not named now stay in the manifest."""
    folder.mkdir(parents=True, exist_ok=True)
    try:
        previous = {e["name"]: e for e in read_manifest(folder)["images"]}
    except LauncherError:
        previous = {}
    wanted = [(spec.name, spec.tag, _archive_name(spec), f"run `launcher images build {spec.name}` first")
              for spec in specs]  # fmt: skip
    wanted += [
        (ref, ref, reference_archive_name(ref), f"pull or load {ref} into this machine's engine first")
        for ref in dict.fromkeys(map(check_reference, references))
    ]
    entries, written = [], []
    for name, tag, file, fix in wanted:
        image = docker_cli.image_id(tag)
        if not image:
            raise LauncherError(f"image {tag} is not on this machine's engine", key=name, fix=fix)
        target = folder / file
        old = previous.get(name)
        if old and old.get("id") == image and target.is_file() and sha256_file(target) == old.get("sha256"):
            say(f"{tag}: archive up to date")
            entries.append({**old, "size": target.stat().st_size})
            continue
        say(f"{tag}: saving to {target}")
        part = target.with_name(target.name + ".part")
        docker_cli.run(["save", "--output", str(part), tag])
        part.replace(target)
        entries.append({"name": name, "tag": tag, "id": image, "file": target.name,
                        "sha256": sha256_file(target), "size": target.stat().st_size})  # fmt: skip
        written.append(target)
    # archives saved before and not named now stay listed while their file is there (a folder filled
    # image by image lists them all)
    named = {name for name, *_rest in wanted}
    entries += [
        e for n, e in previous.items() if n not in named and (folder / str(e.get("file", ""))).is_file()
    ]
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
