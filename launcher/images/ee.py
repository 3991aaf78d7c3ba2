"""What the execution environment image (`launcher images build ee`, images/ee/) is made from besides
its wheels: the collection ovms.edge as `ansible-galaxy collection build` makes it.

The tarball is rebuilt at every image build, but kept byte for byte when its members did not change
(gzip and tar record the build time): the image's fingerprint then stays the same and an unchanged
collection does not rebuild the image.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from launcher.content import content
from launcher.errors import ExternalError, LauncherError
from launcher.paths import cache_dir

TARBALL = "ovms-edge.tar.gz"


def _members_digest(tarball: Path) -> str:
    """A digest of the tarball's members (names, modes, contents), not of its timestamps."""
    digest = hashlib.sha256()
    with tarfile.open(tarball, "r:gz") as tar:
        for member in sorted(tar.getmembers(), key=lambda m: m.name):
            digest.update(f"{member.name}|{member.type!r}|{member.mode:o}|{member.linkname}\n".encode())
            if member.isfile():
                extracted = tar.extractfile(member)
                assert extracted is not None
                digest.update(hashlib.sha256(extracted.read()).digest())
    return digest.hexdigest()


def collection_tarball() -> Path:
    """The collection built with `ansible-galaxy collection build` (the files galaxy.yml's manifest lists),
    in the launcher's cache; the earlier file when nothing in it changed."""
    root = content().root
    if not (root / "galaxy.yml").is_file():
        raise LauncherError(
            "the execution environment needs the collection's galaxy.yml, which is missing",
            file=root / "galaxy.yml",
            fix="reinstall the launcher, or build from a checkout",
        )
    dest = cache_dir() / "build" / "ee" / TARBALL
    dest.parent.mkdir(parents=True, exist_ok=True)
    galaxy = Path(sys.executable).parent / "ansible-galaxy"
    with tempfile.TemporaryDirectory(prefix="ee-collection-", dir=dest.parent) as tmp:
        proc = subprocess.run(
            [str(galaxy if galaxy.exists() else "ansible-galaxy"), "collection", "build",
             "--force", "--output-path", tmp, str(root)],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        built = sorted(Path(tmp).glob("*.tar.gz"))
        if proc.returncode != 0 or len(built) != 1:
            raise ExternalError(
                f"ansible-galaxy collection build failed (exit {proc.returncode}): "
                f"{(proc.stderr or proc.stdout).strip()[-2000:]}",
                file=root / "galaxy.yml",
            )
        if dest.is_file() and _members_digest(dest) == _members_digest(built[0]):
            return dest
        shutil.move(str(built[0]), dest)
    return dest
