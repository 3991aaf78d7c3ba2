"""Debian 13, the current Debian, runs the launcher: a root made with debootstrap (trixie, its Python
3.13 and python3-venv) creates a virtual environment, installs the wheel with pip and runs
`launcher validate` on the packaged localhost inventory.

The root is made fresh in a scratch folder (debootstrap keeps the packages it downloads in the
launcher's cache) and removed at the end. While debootstrap runs, the host
resolves the wheel's dependencies for CPython 3.13 (`pip download --python-version 3.13`, binary wheels
only: the proof that they all resolve there) into a wheelhouse; pip inside the root installs from it
with `--no-index`, as an air-gapped site would (the host, not the root, trusts the network's TLS).
/proc and /dev are bound into the root while pip and the launcher run, and unmounted in any case."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from launcher import __version__
from launcher.images.wheelhouse import platform_tags
from launcher.paths import cache_dir
from testbed.paths import PROJECT_ROOT

pytestmark = [pytest.mark.slow, pytest.mark.collection, pytest.mark.timeout(1200)]

MIRROR = "http://deb.debian.org/debian"


def _run(args: list[str], timeout: float = 600, **kwargs: object) -> subprocess.CompletedProcess:
    proc = subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=False, **kwargs)
    assert proc.returncode == 0, (
        f"{' '.join(args)}: exit {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    )
    return proc


def _debootstrap() -> str:
    found = shutil.which("debootstrap") or shutil.which("debootstrap", path="/usr/sbin:/sbin")
    if found:
        return found
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    _run(["apt-get", "update", "-q"], env=env)
    _run(["apt-get", "install", "-y", "-q", "--no-install-recommends", "debootstrap"], env=env)
    return shutil.which("debootstrap", path="/usr/sbin:/sbin:/usr/bin") or "debootstrap"


def _wheelhouse(out: Path) -> Path:
    """The wheel of this checkout and every dependency of it as CPython 3.13 binary wheels, in `out`."""
    start = time.monotonic()
    _run(
        [sys.executable, "-m", "pip", "wheel", str(PROJECT_ROOT), "--no-deps", "-q", "-w", str(out)], cwd=out
    )
    (wheel,) = out.glob("ovms_launcher-*-py3-none-any.whl")
    platforms = [arg for tag in platform_tags() for arg in ("--platform", tag)]
    _run(
        [sys.executable, "-m", "pip", "download", "-q", "--only-binary=:all:", "--python-version", "3.13",
         "--implementation", "cp", "--abi", "cp313", *platforms, "-d", str(out), str(wheel)],
        timeout=900, cwd=out,
    )  # fmt: skip
    print(f"host: wheel + CPython 3.13 wheelhouse: {time.monotonic() - start:.1f}s")
    return wheel


@pytest.fixture
def trixie(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """A Debian 13 root with /proc and /dev bound in, and the wheel (its wheelhouse in /tmp/wheels)."""
    if os.geteuid() != 0:
        pytest.skip("debootstrap and chroot need root")
    root = tmp_path / "trixie"
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    mounts: list[Path] = []
    try:
        with ThreadPoolExecutor(max_workers=1) as pool:
            wheel = pool.submit(_wheelhouse, wheels)
            start = time.monotonic()
            # the downloaded packages stay in the launcher's cache: a second run downloads nothing
            debs = cache_dir() / "debootstrap" / "trixie"
            debs.mkdir(parents=True, exist_ok=True)
            _run(
                [_debootstrap(), "--variant=minbase", "--include=python3,python3-venv,ca-certificates",
                 f"--cache-dir={debs}", "trixie", str(root), MIRROR],
                timeout=900,
            )  # fmt: skip
            print(f"debootstrap trixie: {time.monotonic() - start:.1f}s")
            built = wheel.result()
        shutil.copytree(wheels, root / "tmp" / "wheels", copy_function=os.link)
        for name in ("proc", "dev"):
            target = root / name
            target.mkdir(exist_ok=True)
            if name == "proc":
                _run(["mount", "-t", "proc", "proc", str(target)])
            else:
                _run(["mount", "--bind", "/dev", str(target)])
            mounts.append(target)
        yield root, Path("/tmp/wheels") / built.name
    finally:
        for target in reversed(mounts):
            subprocess.run(["umount", "--lazy", str(target)], capture_output=True, check=False)
        if root.exists() and not any(os.path.ismount(m) for m in mounts):
            shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(wheels, ignore_errors=True)


def test_debian13_creates_the_venv_and_validates(trixie: tuple[Path, Path]):
    root, wheel = trixie
    env = {
        "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME": "/root",
        "LANG": "C.UTF-8",
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    }

    def chroot(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
        return _run(["chroot", str(root), *args], timeout=timeout, env=env)

    version = chroot("python3", "-c", "import sys; print('%d.%d' % sys.version_info[:2])").stdout.strip()
    assert version == "3.13", version
    start = time.monotonic()
    chroot("python3", "-m", "venv", "/opt/ovms-launcher")
    pip = "/opt/ovms-launcher/bin/pip"
    chroot(pip, "install", "-q", "--no-index", "--find-links", str(wheel.parent), str(wheel), timeout=900)
    print(f"Debian 13: venv + pip install of the wheel: {time.monotonic() - start:.1f}s")

    start = time.monotonic()
    assert __version__ in chroot("/opt/ovms-launcher/bin/launcher", "--version").stdout
    collection = chroot(
        "/opt/ovms-launcher/bin/python", "-c", "from launcher.content import content; print(content().root)"
    ).stdout.strip()
    assert collection.startswith("/opt/ovms-launcher/lib/python3.13/site-packages/launcher/data/"), collection
    valid = chroot("/opt/ovms-launcher/bin/launcher", "validate", "-i", f"{collection}/inventories/localhost")
    print(f"Debian 13: launcher validate: {time.monotonic() - start:.1f}s\n{valid.stdout}")
    assert "valid" in valid.stdout and "localhost" in valid.stdout
