"""Which OVMS release the double emulates, and what differs between releases.

The real server's command line has no release flag, so neither has the double's: the release comes
from the environment variable OVMS_DOUBLE_RELEASE, which the image sets from its build argument and
also records in the image label `ovms-launcher.ovms-release` (read by `launcher validate`). Tests that
need an older server (the TensorFlow Serving API of releases up to 2026.2) run the image with
`-e OVMS_DOUBLE_RELEASE=2025.4`.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

ENV = "OVMS_DOUBLE_RELEASE"
# The release the double emulates unless told otherwise: the current OVMS release.
DEFAULT = "2026.4.1"
_PATTERN = re.compile(r"^(\d{4})\.(\d+)(?:\.(\d+))?$")


class ReleaseError(ValueError):
    """OVMS_DOUBLE_RELEASE is not a release number."""


@dataclass(frozen=True, order=True)
class Release:
    year: int
    minor: int
    patch: int = 0

    @classmethod
    def parse(cls, text: str) -> Release:
        match = _PATTERN.match(text.strip())
        if match is None:
            raise ReleaseError(f"{ENV}={text!r}: expected an OVMS release such as 2026.4.1 or 2025.0")
        year, minor, patch = match.groups()
        return cls(int(year), int(minor), int(patch or 0))

    def __str__(self) -> str:
        """As ServerMetadata reports it (PROJECT_VERSION, e.g. "2026.3.0")."""
        return f"{self.year}.{self.minor}.{self.patch}"

    @property
    def serves_tfs(self) -> bool:
        """TensorFlow Serving gRPC and REST APIs: removed in 2026.3 (model_server #4349)."""
        return self < Release(2026, 3)

    @property
    def has_stateful_flags(self) -> bool:
        """--stateful, --sequence_cleaner_poll_wait_minutes, …: removed in 2026.3 (model_server #4271)."""
        return self < Release(2026, 3)

    @property
    def has_input_count_flag(self) -> bool:
        """--disable_input_count_validation (KServe): added in 2026.4.0."""
        return self >= Release(2026, 4)


def current() -> Release:
    return Release.parse(os.environ.get(ENV) or DEFAULT)
