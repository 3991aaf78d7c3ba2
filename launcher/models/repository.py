"""The controller's model repository, laid out as OVMS expects.

    cache_dir()/models/<name>/<version>/model.xml         (a model converted to IR: `serve: ir`)
                                       model.bin
                                       model.onnx        (instead, for a model served as-is)
                                       <client files>    (e.g. characters.txt: manifest `client_files`)
                                       checksums.sha256   (sha256sum format: every file above)
                                       source.json        (the recipe the version was built from)

A version directory is built in a hidden temporary directory beside it (``.<version>.tmp-*``; OVMS
ignores names that are not positive integers) and renamed into place, so the directory either
holds a complete prepared model or does not exist.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from launcher.models.convert import IR_BIN, IR_XML, ONNX_FILE
from launcher.models.fetch import sha256_file
from launcher.paths import cache_dir

CHECKSUMS = "checksums.sha256"
SOURCE_JSON = "source.json"

State = Literal["ready", "missing", "stale", "corrupt"]


def repository_dir() -> Path:
    """The model repository on the controller (mount it, or copy it, as OVMS's /models)."""
    return cache_dir() / "models"


def version_dir(name: str, version: int) -> Path:
    return repository_dir() / name / str(version)


@contextmanager
def cache_lock(name: str) -> Iterator[None]:
    """An exclusive lock on one part of the cache, across processes (e.g. parallel test sessions)."""
    lock_dir = cache_dir() / "locks"
    lock_dir.mkdir(parents=True, exist_ok=True)
    with (lock_dir / f"{name}.lock").open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def repository_lock() -> AbstractContextManager[None]:
    """Serialises `prepare` runs sharing one cache."""
    return cache_lock("models")


def served_files(recipe: dict[str, Any]) -> tuple[str, ...]:
    """The files OVMS reads in a version built from `recipe` (recipes without `serve` are IR)."""
    return (ONNX_FILE,) if recipe.get("serve") == "as_is" else (IR_XML, IR_BIN)


def client_file_names(recipe: dict[str, Any]) -> tuple[str, ...]:
    """The client files (manifest `client_files`) a version built from `recipe` holds."""
    files = recipe.get("client_files")
    return tuple(sorted(files)) if isinstance(files, dict) else ()


def checked_files(recipe: dict[str, Any]) -> tuple[str, ...]:
    """Every file of a version built from `recipe` that checksums.sha256 lists: the served model
    files, then the client files."""
    return (*served_files(recipe), *client_file_names(recipe))


def write_checksums(directory: Path, names: tuple[str, ...]) -> None:
    lines = [f"{sha256_file(directory / name)}  {name}\n" for name in names]
    (directory / CHECKSUMS).write_text("".join(lines), encoding="utf-8")


def read_checksums(directory: Path) -> dict[str, str]:
    sums: dict[str, str] = {}
    for line in (directory / CHECKSUMS).read_text(encoding="utf-8").splitlines():
        digest, _, name = line.partition("  ")
        if digest and name:
            sums[name.lstrip("*")] = digest
    return sums


def checksums_ok(directory: Path, names: tuple[str, ...]) -> bool:
    """checksums.sha256 lists exactly `names`, and each file has the listed sha256."""
    try:
        sums = read_checksums(directory)
        if set(sums) != set(names):
            return False
        return all(sums[name] == sha256_file(directory / name) for name in names)
    except OSError:
        return False


def read_source_json(directory: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((directory / SOURCE_JSON).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def state_of(directory: Path, recipe: dict[str, Any]) -> State:
    """ready: built from this recipe and intact; stale: built from another recipe; corrupt: files
    missing or changed since they were written; missing: not prepared."""
    if not directory.is_dir():
        return "missing"
    recorded = read_source_json(directory)
    held = recorded.get("recipe") if recorded is not None else None
    if not isinstance(held, dict):
        return "corrupt"
    names = checked_files(held)  # what the version was built to hold
    if not all((directory / name).is_file() for name in (*names, CHECKSUMS)):
        return "corrupt"
    if held != recipe:
        return "stale"
    return "ready" if checksums_ok(directory, names) else "corrupt"


@dataclass
class Staging:
    """A temporary version directory beside the target; `install()` renames it into place."""

    target: Path
    path: Path

    def write_source_json(self, data: dict[str, Any]) -> None:
        text = json.dumps(data, indent=2, sort_keys=True) + "\n"
        (self.path / SOURCE_JSON).write_text(text, encoding="utf-8")

    def install(self) -> None:
        for path in sorted(self.path.iterdir()):
            # readable by the server's own user (OVMS runs as uid 5000 with the repository mounted)
            path.chmod(0o644)
            with path.open("rb") as handle:
                os.fsync(handle.fileno())
        self.path.chmod(0o755)
        old: Path | None = None
        if self.target.exists():
            old = self.target.with_name(f".{self.target.name}.old-{os.getpid()}")
            shutil.rmtree(old, ignore_errors=True)
            self.target.rename(old)
        self.path.rename(self.target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


@contextmanager
def staging(name: str, version: int) -> Iterator[Staging]:
    target = version_dir(name, version)
    target.parent.mkdir(parents=True, exist_ok=True)
    for folder in (repository_dir(), target.parent):  # traversable by the server's user
        folder.chmod(0o755)
    path = Path(tempfile.mkdtemp(prefix=f".{version}.tmp-", dir=target.parent))
    try:
        yield Staging(target=target, path=path)
    finally:
        shutil.rmtree(path, ignore_errors=True)


def clean_leftovers(name: str) -> None:
    """Remove temporary directories a killed run left beside the versions of `name`."""
    folder = repository_dir() / name
    if not folder.is_dir():
        return
    for child in folder.iterdir():
        if child.name.startswith(".") and (".tmp-" in child.name or ".old-" in child.name):
            shutil.rmtree(child, ignore_errors=True)


def _is_version(path: Path) -> bool:
    return path.is_dir() and path.name.isdigit() and not path.name.startswith("0")


def client_files(name: str) -> dict[int, dict[str, Path]]:
    """{version: {file name: path}}: the client files (manifest `client_files`) of every prepared
    version of model `name` in the controller cache, as recorded in each version's source.json.
    Versions without client files map to {}; a model never prepared gives {}. Nothing is hashed
    here: `state_of` (and the ovms_models role, before it copies) checks the files."""
    folder = repository_dir() / name
    found: dict[int, dict[str, Path]] = {}
    if not folder.is_dir():
        return found
    for version in sorted((p for p in folder.iterdir() if _is_version(p)), key=lambda p: int(p.name)):
        recorded = read_source_json(version) or {}
        recipe = recorded.get("recipe") if isinstance(recorded.get("recipe"), dict) else {}
        found[int(version.name)] = {
            file: version / file for file in client_file_names(recipe) if (version / file).is_file()
        }
    return found
