"""Builds the harness's host image (`ovms-launcher-test/host:dev`) once per content.

The image is FROM the launcher's offline Debian base; its fingerprint (base image id plus every file
of host_image/) is stored as a label, so an unchanged image is not rebuilt.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

from testbed.dockerutil import TEST_LABEL, DockerError, docker

HOST_IMAGE = "ovms-launcher-test/host:dev"
BASE_IMAGE = "ovms-launcher/base:bookworm"
CONTEXT = Path(__file__).resolve().parent / "host_image"
FINGERPRINT_LABEL = "ovms-launcher-test.fingerprint"
BUILD_TIMEOUT_S = 900


def _image_id(ref: str) -> str | None:
    proc = docker("image", "inspect", "--format", "{{.Id}}", ref, check=False)
    return proc.stdout.strip() if proc.returncode == 0 else None


def fingerprint(context: Path, base_id: str) -> str:
    """sha256 over the base image id and each context file's path, mode and content."""
    digest = hashlib.sha256(f"base={base_id}\n".encode())
    for path in sorted(p for p in context.rglob("*") if p.is_file()):
        rel = path.relative_to(context).as_posix()
        digest.update(f"file {rel} {path.stat().st_mode & 0o777:o}\n".encode())
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def current_fingerprint(ref: str = HOST_IMAGE) -> str | None:
    proc = docker("image", "inspect", "--format", f'{{{{index .Config.Labels "{FINGERPRINT_LABEL}"}}}}', ref,
                  check=False)  # fmt: skip
    return proc.stdout.strip() or None if proc.returncode == 0 else None


def ensure_host_image(log_path: Path) -> bool:
    """Build the host image unless one with the same fingerprint exists; True when it was built."""
    base_id = _image_id(BASE_IMAGE)
    if base_id is None:
        raise DockerError(
            f"the base image {BASE_IMAGE} is missing: build it with `launcher images build` "
            "(it makes the offline Debian base first)"
        )
    wanted = fingerprint(CONTEXT, base_id)
    if current_fingerprint() == wanted:
        return False
    log_path.parent.mkdir(parents=True, exist_ok=True)
    args = ["docker", "build", "--tag", HOST_IMAGE, "--build-arg", f"BASE_IMAGE={BASE_IMAGE}",
            "--label", TEST_LABEL, "--label", f"{FINGERPRINT_LABEL}={wanted}", str(CONTEXT)]  # fmt: skip
    with log_path.open("w", encoding="utf-8") as log:
        proc = subprocess.run(
            args,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "DOCKER_BUILDKIT": "0"},  # the classic builder: no buildx plugin needed
            timeout=BUILD_TIMEOUT_S,
            check=False,
        )
    if proc.returncode != 0:
        tail = "\n  ".join(log_path.read_text(encoding="utf-8", errors="replace").splitlines()[-15:])
        raise DockerError(f"building {HOST_IMAGE} failed (exit {proc.returncode}); {log_path}:\n  {tail}")
    return True
