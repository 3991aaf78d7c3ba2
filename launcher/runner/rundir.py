"""Where runs keep their ansible-runner private data dir and artifacts: `runs/<UTC time>-<action>/`."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

from launcher.content import content


def runs_root() -> Path:
    """`$OVMS_LAUNCHER_RUNS`, else `<repo>/runs/` (git-ignored)."""
    env = os.environ.get("OVMS_LAUNCHER_RUNS")
    return Path(env).expanduser().resolve() if env else content().root / "runs"


def new_run_dir(action: str, root: Path | None = None, now: datetime | None = None) -> Path:
    """A fresh, empty folder for one run (never reused: stale runner `env/` files would leak in)."""
    base = root or runs_root()
    base.mkdir(parents=True, exist_ok=True)
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    for attempt in range(1, 1000):
        name = f"{stamp}-{action}" if attempt == 1 else f"{stamp}-{action}-{attempt}"
        path = base / name
        try:
            path.mkdir()
        except FileExistsError:
            continue
        return path
    raise FileExistsError(f"no free run directory name under {base} for {stamp}-{action}")
