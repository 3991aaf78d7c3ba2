"""Whether each client's server still serves the API its profiles speak.

OVMS 2026.3 removed the TensorFlow Serving API: a profile with `api: tfs` whose server image is
2026.3 or later would never infer. The release comes from the image tag (`openvino/model_server:
2026.4.1`, `…:2025.0-gpu`), else from the label `ovms-launcher.ovms-release` of an image present on
the controller (the double's `dev` tag); when neither tells (`latest`, a digest, an image only on the
host), validation warns instead of refusing.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

from launcher.ovms_release import Release, ReleaseError
from launcher.validate.crosschecks import ProfileInfo
from launcher.validate.origins import VarOrigins
from launcher.validate.problems import Problem
from launcher.validate.variables import HostVars

_TAG = re.compile(r"^(\d{4}\.\d+(?:\.\d+)?)(?:-[A-Za-z0-9._-]+)?$")

LabelReader = Callable[[str], Mapping[str, str]]


def _local_labels(image: str) -> Mapping[str, str]:
    """Labels of an image present on the controller; none when Docker or the image is not there."""
    from launcher.errors import LauncherError
    from launcher.images import docker_cli

    if image.startswith("-"):
        return {}
    try:
        return docker_cli.image_labels(image)
    except (LauncherError, OSError):
        return {}


def image_release(image: str, labels: LabelReader = _local_labels) -> tuple[Release | None, str]:
    """The OVMS release an image serves and how it is known ("tag", "label", or why it is not)."""
    from launcher.images.specs import OVMS_RELEASE_LABEL

    reference = image.split("@", 1)[0]
    name, _, tag = reference.rpartition(":")
    if "/" in tag or not name:  # "registry:5000/repo" has no tag
        tag = ""
    match = _TAG.match(tag)
    if match:
        return Release.parse(match.group(1)), "tag"
    label = labels(image).get(OVMS_RELEASE_LABEL, "")
    if label:
        try:
            return Release.parse(label), "label"
        except ReleaseError:
            return None, f"its label {OVMS_RELEASE_LABEL}={label!r} is no release"
    if "@" in image:
        return None, "it is given by digest"
    return None, f"its tag {tag!r} names no release" if tag else "it has no tag"


def check_api_support(
    hosts: Mapping[str, HostVars],
    origins: VarOrigins,
    profiles: Mapping[str, list[ProfileInfo]],
    assigned: Mapping[str, str],
    labels: LabelReader = _local_labels,
) -> tuple[list[Problem], list[Problem]]:
    """(problems, warnings): a `tfs` profile against a server image of 2026.3 or later is refused; one
    whose server image does not say its release is a warning."""
    problems: list[Problem] = []
    warnings: list[Problem] = []
    releases: dict[str, tuple[Release | None, str]] = {}
    for client, infos in profiles.items():
        tfs = [info for info in infos if info.api == "tfs"]
        server = assigned.get(client)
        checked = hosts.get(server) if server else None
        if not tfs or checked is None:
            continue
        server_vars = checked.get("ovms_server_")
        if server_vars is None or "ovms_server_image" in checked.deferred:
            continue
        image = server_vars.image or ""
        if image not in releases:
            releases[image] = image_release(image, labels)
        release, how = releases[image]
        where = origins.find("ovms_server_image", checked.host.name, checked.host.groups)
        for info in tfs:
            if release is None:
                warnings.append(
                    Problem(
                        str(info.file),
                        "api",
                        f"profile {info.name!r} speaks the TensorFlow Serving API; whether server "
                        f"{server}'s image {image} still serves it cannot be told ({how}; OVMS removed "
                        "it in 2026.3)",
                        "use `api: kserve`, or a server image tagged with its release (e.g. 2026.2)",
                        (client,),
                    )
                )
            elif not release.serves_tfs:
                problems.append(
                    Problem(
                        str(info.file),
                        "api",
                        f"profile {info.name!r} speaks the TensorFlow Serving API, which server {server}'s "
                        f"image {image} (OVMS {release}, from its {how}; set in {where}) no longer serves: "
                        "OVMS removed it in 2026.3",
                        "set `api: kserve` in the profile (every OVMS since 2022.1 serves KServe v2), "
                        "or serve it with an image of 2026.2 or older",
                        (client,),
                    )
                )
    return problems, warnings
