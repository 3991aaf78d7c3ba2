"""Which OVMS release the double emulates; what differs between releases is the product's knowledge
(launcher/ovms_release.py, which the double's image carries beside the double).

The real server's command line has no release flag, so neither has the double's: the release comes
from the environment variable OVMS_DOUBLE_RELEASE, which the image sets from its build argument and
also records in the image label `ovms-launcher.ovms-release` (read by `launcher validate`). Tests that
need an older server (the TensorFlow Serving API of releases up to 2026.2) run the image with
`-e OVMS_DOUBLE_RELEASE=2025.4`.
"""

from __future__ import annotations

import os

from launcher.ovms_release import CURRENT, Release, ReleaseError

ENV = "OVMS_DOUBLE_RELEASE"
# The release the double emulates unless told otherwise: the release the project pins.
DEFAULT = CURRENT

__all__ = ["DEFAULT", "ENV", "Release", "ReleaseError", "current", "parse"]


def parse(text: str) -> Release:
    return Release.parse(text, source=ENV)


def current() -> Release:
    return parse(os.environ.get(ENV) or DEFAULT)
