"""Where the launcher keeps its caches, its run artifacts and the PKI on the controller.

In a source checkout, run artifacts and the PKI stay in the checkout (`runs/`, `certs/`, both
git-ignored); an installed launcher (the wheel) keeps them in the user's folders, after the XDG base
directory rules. An environment variable overrides each folder:

| folder | variable | checkout | installed |
| --- | --- | --- | --- |
| cache (models, wheelhouse, base images) | OVMS_LAUNCHER_CACHE | `$XDG_CACHE_HOME/ovms-launcher` | same |
| run artifacts | OVMS_LAUNCHER_RUNS_DIR | `<checkout>/runs` | `$XDG_STATE_HOME/ovms-launcher/runs` |
| PKI | OVMS_LAUNCHER_CERTS_DIR | `<checkout>/certs` | `$XDG_DATA_HOME/ovms-launcher/certs` |

XDG_CACHE_HOME defaults to `~/.cache`, XDG_STATE_HOME to `~/.local/state`, XDG_DATA_HOME to
`~/.local/share`. The runner passes the resolved cache and PKI folders to Ansible as
OVMS_LAUNCHER_CACHE and OVMS_LAUNCHER_CERTS_DIR, so the roles use the same ones.
"""

from __future__ import annotations

import os
from pathlib import Path

APP = "ovms-launcher"
CACHE_ENV = "OVMS_LAUNCHER_CACHE"
CERTS_DIR_ENV = "OVMS_LAUNCHER_CERTS_DIR"
RUNS_DIR_ENV = "OVMS_LAUNCHER_RUNS_DIR"
# the runs folder's earlier variable, still honoured (OVMS_LAUNCHER_RUNS_DIR wins)
RUNS_DIR_ENV_OLD = "OVMS_LAUNCHER_RUNS"


def _xdg(variable: str, default: str) -> Path:
    """$VARIABLE when set to an absolute path (the XDG rule: relative values are ignored), else ~/DEFAULT."""
    value = os.environ.get(variable, "")
    if value and Path(value).expanduser().is_absolute():
        return Path(value).expanduser()
    return Path.home() / default


def _checkout() -> Path | None:
    from launcher.content import content  # the content module reads galaxy.yml: only when asked

    return content().checkout


def cache_dir() -> Path:
    """Controller-side cache (models, wheelhouse, base images); `OVMS_LAUNCHER_CACHE` overrides it."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser().resolve()
    return (_xdg("XDG_CACHE_HOME", ".cache") / APP).resolve()


def default_certs_dir() -> Path:
    """The PKI folder: `$OVMS_LAUNCHER_CERTS_DIR`, else `certs/` of the checkout the launcher runs from,
    else `$XDG_DATA_HOME/ovms-launcher/certs`."""
    env = os.environ.get(CERTS_DIR_ENV)
    if env:
        return Path(env).expanduser()
    checkout = _checkout()
    if checkout is not None:
        return checkout / "certs"
    return _xdg("XDG_DATA_HOME", ".local/share") / APP / "certs"


def runs_root() -> Path:
    """Where each run's ansible-runner folder goes: `$OVMS_LAUNCHER_RUNS_DIR` (or the older
    `$OVMS_LAUNCHER_RUNS`), else `runs/` of the checkout, else `$XDG_STATE_HOME/ovms-launcher/runs`."""
    env = os.environ.get(RUNS_DIR_ENV) or os.environ.get(RUNS_DIR_ENV_OLD)
    if env:
        return Path(env).expanduser().resolve()
    checkout = _checkout()
    if checkout is not None:
        return checkout / "runs"
    return (_xdg("XDG_STATE_HOME", ".local/state") / APP / "runs").resolve()
