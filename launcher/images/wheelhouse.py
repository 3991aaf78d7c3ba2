"""Python wheels for an image, downloaded on the host (which trusts the site's TLS proxy and reaches
the package index) and installed in the image with `pip install --no-index`."""

from __future__ import annotations

import hashlib
import os
import platform
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from launcher.errors import ExternalError
from launcher.images.specs import ImageSpec
from launcher.paths import cache_dir

# The images' Python (Debian bookworm and python:3.11-slim-bookworm) and its glibc.
PYTHON_VERSION = "3.11"
ABI = "cp311"
GLIBC_MINOR = 36  # glibc 2.36


def _arch() -> str:
    machine = platform.machine().lower()
    return {"amd64": "x86_64", "arm64": "aarch64"}.get(machine, machine)


def target_platform() -> str:
    return f"manylinux_2_{GLIBC_MINOR}_{_arch()}"


def platform_tags() -> list[str]:
    """Every manylinux tag the images' glibc accepts: pip does not expand a --platform downward."""
    arch = _arch()
    tags = [f"manylinux_2_{minor}_{arch}" for minor in range(GLIBC_MINOR, 16, -1)]
    return [*tags, f"manylinux2014_{arch}"]


def wheelhouse_dir(spec: ImageSpec) -> Path:
    return cache_dir() / "wheelhouse" / f"{spec.name}-{ABI}-{target_platform()}"


def _stamp(requirements: Path) -> str:
    digest = hashlib.sha256(requirements.read_bytes())
    digest.update(f"{ABI}|{target_platform()}".encode())
    return digest.hexdigest()


def ensure_wheelhouse(spec: ImageSpec, say: Callable[[str], None], log_path: Path) -> Path:
    """The folder of wheels for spec's requirements.txt; downloads only when the file changed."""
    assert spec.requirements is not None
    dest = wheelhouse_dir(spec)
    stamp_file = dest / ".stamp"
    stamp = _stamp(spec.requirements)
    if stamp_file.is_file() and stamp_file.read_text(encoding="utf-8") == stamp:
        say(f"{spec.name}: wheelhouse up to date ({len(list(dest.glob('*.whl')))} wheels)")
        return dest
    tmp = dest.with_name(dest.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    if dest.is_dir():  # reuse what was downloaded before: pip skips files already present
        for wheel in dest.glob("*.whl"):
            os.link(wheel, tmp / wheel.name)
    say(f"{spec.name}: downloading wheels for {target_platform()} (log {log_path})")
    cmd = [
        sys.executable, "-m", "pip", "download",
        "--disable-pip-version-check",
        "--only-binary=:all:",
        *[arg for tag in platform_tags() for arg in ("--platform", tag)],
        "--python-version", PYTHON_VERSION,
        "--implementation", "cp",
        "--abi", ABI,
        "-r", str(spec.requirements),
        "-d", str(tmp),
    ]  # fmt: skip
    log_path.parent.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    with log_path.open("a", encoding="utf-8") as log:
        log.write("$ " + " ".join(cmd) + "\n" + proc.stdout + proc.stderr)
    if proc.returncode != 0:
        shutil.rmtree(tmp, ignore_errors=True)
        raise ExternalError(
            f"pip could not download the wheels of {spec.requirements} (exit {proc.returncode}); "
            f"see {log_path}",
            fix="check the package index is reachable from this host (or pip's index-url setting)",
        )
    _prune(tmp, proc.stdout)
    (tmp / ".stamp").write_text(stamp, encoding="utf-8")
    old = dest.with_name(dest.name + ".old")
    if dest.exists():
        dest.rename(old)
    tmp.rename(dest)
    shutil.rmtree(old, ignore_errors=True)
    return dest


def _prune(folder: Path, pip_output: str) -> None:
    """Remove wheels left from an earlier resolution that this one no longer uses."""
    used = {
        Path(line.split()[-1]).name
        for line in pip_output.splitlines()
        if line.strip().startswith(("Saved ", "File was already downloaded "))
    }
    if not used:  # unknown pip output format: keep everything rather than guess
        return
    for wheel in folder.glob("*.whl"):
        if wheel.name not in used:
            wheel.unlink()
