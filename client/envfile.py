"""The profile's env file: `KEY=VALUE` lines overriding a documented set of profile settings."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from .errors import ClientError

_KEY = re.compile(r"^[A-Z_][A-Z0-9_]*$")

# Settings the deployment owns; a profile never sets them.
DEPLOYMENT_VARIABLES = (
    "OVMS_ADDRESS",
    "OVMS_TLS_CA",
    "OVMS_TLS_CERT",
    "OVMS_TLS_KEY",
    "OVMS_RESULTS_DIR",
    "OVMS_CAMERA_CREDENTIALS",
    "OVMS_MODEL_FILES_DIR",
    "OVMS_METRICS_PORT",
)


@dataclass(frozen=True)
class Override:
    """One setting taken from the env file or the process environment."""

    variable: str
    value: str
    origin: str  # "path/to/profile.env:LINE" or "environment"


def parse_env_file(path: Path) -> dict[str, Override]:
    """Read `KEY=VALUE` lines (`#` comments, blank lines, optional `export `, optional quotes)."""
    result: dict[str, Override] = {}
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ClientError(f"cannot read the env file: {exc.strerror}", file=path) from exc
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[len("export ") :].lstrip()
        key, sep, value = line.partition("=")
        key = key.strip()
        where = f"{path}:{number}"
        if not sep:
            raise ClientError(
                f"line {number}: expected KEY=VALUE, got {raw.strip()!r}", file=path, fix="write KEY=VALUE"
            )
        if not _KEY.match(key):
            raise ClientError(
                f"line {number}: {key!r} is not a valid variable name (expected upper-case letters, "
                "digits and underscores)",
                file=path,
                key=key,
            )
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        elif value and value[0] in "'\"":
            raise ClientError(f"line {number}: unterminated quote in the value", file=path, key=key)
        if key in result:
            raise ClientError(
                f"line {number}: set twice (first at line {result[key].origin.rsplit(':', 1)[1]})",
                file=path,
                key=key,
            )
        result[key] = Override(key, value, where)
    return result
