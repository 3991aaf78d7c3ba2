"""Where the launcher finds its own files and keeps its caches."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """Controller-side cache (models, wheelhouse, base images); `OVMS_LAUNCHER_CACHE` overrides it."""
    env = os.environ.get("OVMS_LAUNCHER_CACHE")
    if env:
        return Path(env).expanduser().resolve()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return (base / "ovms-launcher").resolve()
