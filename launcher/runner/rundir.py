"""Where runs keep their ansible-runner private data dir and artifacts: `<runs root>/<UTC time>-<action>/`
(the runs root: launcher.paths.runs_root, `runs/` of a checkout or the user's state folder)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

# the rule (environment, checkout, the user's state folder) lives in launcher.paths
from launcher.paths import runs_root

__all__ = ["artifacts_dir", "new_run_dir", "runs_root"]


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


def artifacts_dir(run_dir: Path, ident: str) -> Path:
    """Where ansible-runner keeps the artifacts (stdout, job_events/, rc) of the run `ident` of `run_dir`."""
    return run_dir / "artifacts" / ident
