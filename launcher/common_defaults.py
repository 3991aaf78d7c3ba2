"""roles/ovms_common/defaults/main.yml as data: the deployment-wide values the launcher reads instead of
copying them (`ovms_common_system_dirs`, `ovms_common_sensitive_dirs`, `ovms_common_pki_layout`,
`ovms_common_pki_lifetimes`, `ovms_monitoring_enabled`). Plain values only (no templates); read once
per process. Outside the validate package, so launcher.pki and launcher.inventory read it at import."""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

from launcher.content import content
from launcher.errors import LauncherError


def defaults_file() -> Path:
    """roles/ovms_common/defaults/main.yml of the collection."""
    return content().roles / "ovms_common" / "defaults" / "main.yml"


@cache
def common_defaults() -> Mapping[str, Any]:
    """The file's variables by name."""
    import yaml

    path = defaults_file()
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise LauncherError(f"cannot read ovms_common's defaults: {exc}", file=path) from exc
    if not isinstance(data, dict):
        raise LauncherError("must be a mapping of variables", file=path, fix="restore the shipped file")
    return data


def common_default(name: str) -> Any:
    """One variable of the file; a LauncherError naming the file and the key when it is missing."""
    data = common_defaults()
    if name not in data:
        raise LauncherError(
            "is missing", file=defaults_file(), key=name, fix="restore it from the shipped file"
        )
    return data[name]
