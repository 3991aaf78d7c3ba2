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
    # sources copied into the build context: context-relative name -> path under the collection's root
    # (the checkout, or the packaged collection of an installed launcher)
    sources: dict[str, str] = field(default_factory=dict)
    # Python code copied into the build context from where this interpreter imports it (the installed
    # package, or the checkout in an editable install): context-relative name -> module name; a
    # package is copied as its folder, or as its __init__.py when the name ends in .py
    packages: dict[str, str] = field(default_factory=dict)
    # files made outside the repository and copied into the build context: context-relative name ->
    # a function that makes (or finds up to date) the file and returns its path; called at each build
    generated: dict[str, Callable[[], Path]] = field(default_factory=dict)
    # whether images/<name>/requirements.txt feeds a wheelhouse
    python: bool = True
    # labels the build adds (besides the fingerprint and the image name)
    labels: dict[str, str] = field(default_factory=dict)
    # why the image builds only from a source checkout (its sources are not in the wheel); an installed
    # launcher leaves it out of the default build and refuses to build it by name
    checkout_only: str = ""
    # whether `launcher images build` with no names builds it (the execution environment is asked for
    # by name only: `launcher images build ee`)
    in_default: bool = True

    @property
    def directory(self) -> Path:
        return IMAGES_DIR / self.name

    @property
    def dockerfile(self) -> Path:
        return self.directory / "Dockerfile"

    @property
    def requirements(self) -> Path | None:
        return self.directory / "requirements.txt" if self.python else None

    @property
    def available(self) -> bool:
        """Whether this launcher can build the image (a checkout-only image needs a checkout)."""
        return not self.checkout_only or content().checkout is not None


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
            sources={"ovms_double": "ovms_double"},
            packages={
                "launcher/__init__.py": "launcher",
                "launcher/ovms_release.py": "launcher.ovms_release",
            },
            labels={OVMS_RELEASE_LABEL: ovms_release.CURRENT},
            checkout_only="the OVMS test double is not part of the ovms-launcher package",
        ),
        ImageSpec(
            name="client",
            tag="ovms-launcher/client:dev",
            public_base="python:3.11-slim-bookworm",
            packages={"client": "client"},
        ),
        ImageSpec(
            name="tls-proxy",
            tag="ovms-launcher/tls-proxy:dev",
            public_base="debian:bookworm-slim",
            python=False,
        ),
        ImageSpec(
            name="local-access",
            tag="ovms-launcher/local-access:dev",
            public_base="debian:bookworm-slim",
            # the guard applies the rule of the module ovms_local_access, from the same file
            sources={"ovms_local_access.py": "plugins/module_utils/ovms_local_access.py"},
            python=False,
        ),
        ImageSpec(
            name="camera-sim",
            tag="ovms-launcher/camera-sim:dev",
            public_base="debian:bookworm-slim",
            generated={"astronaut.png": _sample_photo},
            python=False,
        ),
        # Prometheus, promtool and the blackbox exporter of role ovms_monitoring (Debian's packages);
        # the node and nginx exporters are in tls-proxy, beside the nginx they sit next to
        ImageSpec(
            name="monitoring",
            tag="ovms-launcher/monitoring:dev",
            public_base="debian:bookworm-slim",
            python=False,
        ),
    )
}


def _ee_collection() -> Path:
    """The collection ovms.edge built as a tarball (the execution environment installs it)."""
    from launcher.images.ee import collection_tarball

    return collection_tarball()


IMAGES["ee"] = ImageSpec(
    name="ee",
    tag="ovms-launcher/ee:dev",
    public_base="python:3.11-slim-bookworm",
    generated={"ovms-edge.tar.gz": _ee_collection},
    in_default=False,
)


def select_images(names: list[str] | tuple[str, ...]) -> list[ImageSpec]:
    """The specs named (when none: all this launcher can build), in a stable order; an unknown name, or
    a checkout-only image named to an installed launcher, is an input error."""
    if not names:
        return [spec for spec in IMAGES.values() if spec.available and spec.in_default]
    unknown = [n for n in names if n not in IMAGES]
    if unknown:
        raise LauncherError(
            f"unknown image {', '.join(unknown)}",
            key="NAME",
            fix=f"choose from: {', '.join(IMAGES)}",
        )
    unavailable = [IMAGES[n] for n in names if not IMAGES[n].available]
    if unavailable:
        spec = unavailable[0]
        raise LauncherError(
            f"image {spec.name} builds only from a source checkout: {spec.checkout_only}",
            key="NAME",
            fix="run `launcher images build` from a checkout of the project (pip install -e .)",
        )
    return [IMAGES[n] for n in IMAGES if n in names]
