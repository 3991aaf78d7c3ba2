"""A private controller cache for tests that add or damage prepared models, so the real cache (shared
with every other test and the developer's own deploys) is never changed.

The launcher subprocess gets it through `OVMS_LAUNCHER_CACHE`; it holds copies (never hard links: a
damaged copy must not damage the original) of the prepared version folders and of the verified
source downloads, so a `launcher models prepare` there downloads nothing.
"""

from __future__ import annotations

import copy
import hashlib
import shutil
from pathlib import Path

import yaml

from launcher.models import DEFAULT_MANIFEST, load_manifest

CHECKSUMS = "checksums.sha256"


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_sums(version_dir: Path) -> dict[str, str]:
    sums = {}
    for line in (version_dir / CHECKSUMS).read_text().splitlines():
        digest, _, name = line.partition("  ")
        if digest and name:
            sums[name.lstrip("*")] = digest
    return sums


def populate(target: Path, source: Path, names: list[str]) -> Path:
    """Copy the prepared versions of `names` and their source downloads from cache `source` into
    cache `target` (created); returns target."""
    loaded = load_manifest(DEFAULT_MANIFEST)
    for name in names:
        src = source / "models" / name
        if not any(src.glob("[1-9]*/" + CHECKSUMS)):
            raise FileNotFoundError(
                f"{name} is not prepared in {source}: run `launcher models prepare {name}`"
            )
        for version_dir in sorted(p for p in src.iterdir() if p.name.isdigit()):
            shutil.copytree(version_dir, target / "models" / name / version_dir.name)
        for entry in (e for e in loaded.models if e.name == name):
            for digest in filter(None, (entry.sha256, entry.weights_sha256)):
                download = source / "downloads" / "sha256" / digest
                if download.is_dir():
                    shutil.copytree(download, target / "downloads" / "sha256" / digest, dirs_exist_ok=True)
    for folder in [target, *target.rglob("*")]:
        if folder.is_dir():
            folder.chmod(0o755)
    return target


def manifest_with_version(path: Path, name: str, version: int, manifest: Path = DEFAULT_MANIFEST) -> Path:
    """A copy of `manifest` whose model `name` also has `version`, built from the same source: the way a
    user rolls out a new version (models/README.md, "Rolling out a new version")."""
    data = yaml.safe_load(manifest.read_text())
    entries = [e for e in data["models"] if e["name"] == name]
    if not entries:
        raise KeyError(f"no model {name} in {manifest}")
    added = copy.deepcopy(entries[-1])
    added["version"] = version
    data["models"].append(added)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def copy_version(cache: Path, name: str, source_version: int, version: int) -> Path:
    """<cache>/models/<name>/<version>: a copy of another prepared version, appearing whole."""
    folder = cache / "models" / name
    staging = folder / f".{version}.tmp-test"
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(folder / str(source_version), staging)
    return staging.rename(folder / str(version))


def truncate(path: Path) -> None:
    """Keep the first half of the file (a copy cut short by a full disk or a killed transfer)."""
    size = path.stat().st_size
    with path.open("r+b") as handle:
        handle.truncate(size // 2)


def corrupt(path: Path) -> None:
    """Same size, different bytes (bit rot, or another model's file under this name)."""
    data = bytearray(path.read_bytes())
    tail = min(4096, len(data))
    data[-tail:] = bytes(b ^ 0xFF for b in data[-tail:])
    path.write_bytes(bytes(data))
