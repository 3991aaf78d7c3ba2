"""What each image of the project is made from."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from launcher import ovms_release
from launcher.content import content
from launcher.errors import LauncherError

IMAGES_DIR = content().images
OFFLINE_BASE = "ovms-launcher/base:bookworm"
LABEL_PREFIX = "ovms-launcher"
# The OVMS release an image serves, for images whose tag does not say it (the double's "dev");
# `launcher validate` reads it to know whether the server still has the TFS API
OVMS_RELEASE_LABEL = f"{LABEL_PREFIX}.ovms-release"


@dataclass(frozen=True)
class ImageSpec:
    """One image: its Dockerfile folder, the project sources copied in, and its Python wheels."""

    name: str
    tag: str
    # public base a connected site uses (the Dockerfile's ARG BASE_IMAGE default)
    public_base: str
    # sources copied into the build context: context-relative name -> path in the repository
    sources: dict[str, str] = field(default_factory=dict)
    # files made outside the repository and copied into the build context: context-relative name ->
    # a function that makes (or finds up to date) the file and returns its path; called at each build
    generated: dict[str, Callable[[], Path]] = field(default_factory=dict)
    # whether images/<name>/requirements.txt feeds a wheelhouse
    python: bool = True
    # labels the build adds (besides the fingerprint and the image name)
    labels: dict[str, str] = field(default_factory=dict)

    @property
    def directory(self) -> Path:
        return IMAGES_DIR / self.name

    @property
    def dockerfile(self) -> Path:
        return self.directory / "Dockerfile"

    @property
    def requirements(self) -> Path | None:
        return self.directory / "requirements.txt" if self.python else None


def _sample_photo() -> Path:
    """The astronaut photo, sha256-checked from the scikit-image wheel (the camera's sample)."""
    from launcher.media import ensure_sample_media  # OpenCV and friends only when an image needs it

    return ensure_sample_media().photo


IMAGES: dict[str, ImageSpec] = {
    spec.name: spec
    for spec in (
        ImageSpec(
            name="ovms-double",
            tag="ovms-launcher/ovms-double:dev",
            public_base="python:3.11-slim-bookworm",
            # the double imports the product's knowledge of OVMS releases (launcher/ovms_release.py)
            sources={
                "ovms_double": "ovms_double",
                "launcher/__init__.py": "launcher/__init__.py",
                "launcher/ovms_release.py": "launcher/ovms_release.py",
            },
            labels={OVMS_RELEASE_LABEL: ovms_release.CURRENT},
        ),
        ImageSpec(
            name="client",
            tag="ovms-launcher/client:dev",
            public_base="python:3.11-slim-bookworm",
            sources={"client": "client"},
        ),
        ImageSpec(
            name="tls-proxy",
            tag="ovms-launcher/tls-proxy:dev",
            public_base="debian:bookworm-slim",
            python=False,
        ),
        ImageSpec(
            name="camera-sim",
            tag="ovms-launcher/camera-sim:dev",
            public_base="debian:bookworm-slim",
            generated={"astronaut.png": _sample_photo},
            python=False,
        ),
    )
}


def select_images(names: list[str] | tuple[str, ...]) -> list[ImageSpec]:
    """The specs named (all when none), in a stable order; an unknown name is an input error."""
    if not names:
        return list(IMAGES.values())
    unknown = [n for n in names if n not in IMAGES]
    if unknown:
        raise LauncherError(
            f"unknown image {', '.join(unknown)}",
            key="NAME",
            fix=f"choose from: {', '.join(IMAGES)}",
        )
    return [IMAGES[n] for n in IMAGES if n in names]
