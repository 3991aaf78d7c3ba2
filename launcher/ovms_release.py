"""Which OpenVINO Model Server release serves which API: the product's knowledge of OVMS releases.

`launcher validate` reads a server image's release (from its tag or label) and refuses profiles that
ask for an API the release no longer has; the test double (ovms_double/release.py) imports this module
to emulate a release faithfully, never the other way round. Standard library only: the double's image
copies this file beside the double.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# The OVMS release the project pins and tests against (the double emulates it unless told otherwise).
CURRENT = "2026.4.1"
_PATTERN = re.compile(r"^(\d{4})\.(\d+)(?:\.(\d+))?$")


class ReleaseError(ValueError):
    """A text that is not an OVMS release number."""


@dataclass(frozen=True, order=True)
class Release:
    year: int
    minor: int
    patch: int = 0

    @classmethod
    def parse(cls, text: str, source: str = "release") -> Release:
        """`2026.4.1`, `2025.0`, …; `source` names where the text came from, for the error."""
        match = _PATTERN.match(text.strip())
        if match is None:
            raise ReleaseError(f"{source}={text!r}: expected an OVMS release such as 2026.4.1 or 2025.0")
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
