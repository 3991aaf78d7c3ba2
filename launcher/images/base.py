"""The image every other image builds FROM: the public one when a registry answers, else a local
Debian base made with debootstrap (air-gapped sites, registries blocked by policy)."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

from launcher.errors import ExternalError, LauncherError
from launcher.images import docker_cli
from launcher.images.specs import OFFLINE_BASE
from launcher.paths import cache_dir

DEFAULT_MIRROR = "http://deb.debian.org/debian"
SUITE = "bookworm"
PACKAGES = ("python3", "python3-venv", "ca-certificates")


def debian_mirror() -> str:
    return os.environ.get("OVMS_LAUNCHER_DEBIAN_MIRROR", DEFAULT_MIRROR)


def ensure_offline_base(say: Callable[[str], None], *, rebuild: bool = False) -> str:
    """Build `ovms-launcher/base:bookworm` with debootstrap unless it exists; returns its tag."""
    if docker_cli.image_id(OFFLINE_BASE) and not rebuild:
        say(f"{OFFLINE_BASE}: present")
        return OFFLINE_BASE
    debootstrap = shutil.which("debootstrap")
    if not debootstrap:
        raise LauncherError(
            "offline images need a local base image and debootstrap is not installed",
            fix="apt-get install -y debootstrap (or load the images with `launcher images load DIR`)",
        )
    if os.geteuid() != 0:
        raise LauncherError(
            "building the offline base image with debootstrap needs root",
            fix="run `launcher images build --offline` as root once, or load a saved base image",
        )
    work = cache_dir() / "base"
    rootfs = work / f"rootfs-{SUITE}"
    log_path = work / "debootstrap.log"
    if rootfs.exists():
        shutil.rmtree(rootfs)
    rootfs.mkdir(parents=True)
    mirror = debian_mirror()
    say(f"{OFFLINE_BASE}: debootstrap {SUITE} from {mirror} (about a minute; log {log_path})")
    with log_path.open("w", encoding="utf-8") as log:
        proc = subprocess.run(
            [
                debootstrap,
                "--variant=minbase",
                f"--include={','.join(PACKAGES)}",
                SUITE,
                str(rootfs),
                mirror,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            check=False,
        )
    if proc.returncode != 0:
        shutil.rmtree(rootfs, ignore_errors=True)
        raise ExternalError(
            f"debootstrap failed (exit {proc.returncode}); see {log_path}",
            fix=f"check that {mirror} is reachable or set OVMS_LAUNCHER_DEBIAN_MIRROR to a local mirror",
        )
    _trim(rootfs, mirror)
    say(f"{OFFLINE_BASE}: importing into Docker")
    _import(rootfs, OFFLINE_BASE)
    shutil.rmtree(rootfs, ignore_errors=True)
    return OFFLINE_BASE


def _trim(rootfs: Path, mirror: str) -> None:
    """Drop the package cache and point apt at the release, updates and security suites."""
    for cached in (rootfs / "var/cache/apt/archives").glob("*.deb"):
        cached.unlink()
    security = mirror.rstrip("/").removesuffix("/debian") + "/debian-security"
    (rootfs / "etc/apt/sources.list").write_text(
        f"deb {mirror} {SUITE} main\n"
        f"deb {mirror} {SUITE}-updates main\n"
        f"deb {security} {SUITE}-security main\n",
        encoding="utf-8",
    )


def _import(rootfs: Path, tag: str) -> None:
    tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
    imp = subprocess.run(
        [
            docker_cli.docker_bin(),
            "import",
            "--change",
            "ENV LANG=C.UTF-8",
            "--change",
            'CMD ["/bin/bash"]',
            "--change",
            f"LABEL ovms-launcher.base={SUITE}-minbase",
            "-",
            tag,
        ],
        stdin=tar.stdout,
        capture_output=True,
        text=True,
        check=False,
    )
    assert tar.stdout is not None
    tar.stdout.close()
    if tar.wait() != 0 or imp.returncode != 0:
        raise ExternalError(f"docker import of the base image failed: {imp.stderr.strip()}")


def resolve_base(public_base: str, *, offline: bool | None, say: Callable[[str], None]) -> tuple[str, bool]:
    """(base image to build FROM, offline?) for an image whose Dockerfile defaults to public_base.

    offline=None decides by itself: a public base already present is used; otherwise it is pulled,
    and when the registry cannot be reached the build switches to the offline base with a message.
    """
    if offline:
        return ensure_offline_base(say), True
    if docker_cli.image_id(public_base):
        return public_base, False
    ok, reason = docker_cli.try_pull(public_base)
    if ok:
        return public_base, False
    if offline is False:
        raise ExternalError(
            f"cannot pull {public_base}: {reason}",
            fix="drop --online to build from a local debootstrap base, or load the base image",
        )
    say(
        f"[yellow]registry unreachable[/] ({public_base}: {reason}); "
        "building offline from a local Debian base with a host wheelhouse"
    )
    return ensure_offline_base(say), True
