"""The Ansible strategy the launcher runs playbooks with: Mitogen's `mitogen_linear` when installed.

Measured on the 2-core machine (docs/benchmarks.md): a warm single-host re-deploy takes about a third
of the time with Mitogen, because each task runs in a persistent interpreter on the host instead of
a fresh Python process per module. The behaviour of the playbooks is the same as with `linear`.

`OVMS_LAUNCHER_STRATEGY=linear` (or any built-in strategy name) turns it off, e.g. to rule Mitogen out
when a deploy behaves oddly, or when a future ansible-core drops third-party strategy plugins (2.19
already prints a deprecation warning for them into the run's output under runs/).
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

STRATEGY_ENV = "OVMS_LAUNCHER_STRATEGY"
MITOGEN_STRATEGY = "mitogen_linear"
# launcher/runner/ansible_strategy/mitogen_linear.py: Mitogen's strategy without its per-task listing of
# the installed collections (measured: about a third of the controller's CPU per task, bench/notes.md)
OWN_STRATEGY_DIR = Path(__file__).resolve().parent / "ansible_strategy"


def mitogen_strategy_dir() -> Path | None:
    """The folder of Mitogen's strategy plugins, or None when ansible_mitogen is not installed."""
    spec = importlib.util.find_spec("ansible_mitogen")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))) / "plugins" / "strategy"
    return folder if (folder / f"{MITOGEN_STRATEGY}.py").is_file() else None


def wanted_strategy() -> str:
    """The strategy asked for: `$OVMS_LAUNCHER_STRATEGY`, else Mitogen's `mitogen_linear`."""
    return os.environ.get(STRATEGY_ENV, MITOGEN_STRATEGY).strip() or MITOGEN_STRATEGY


def strategy_envvars() -> dict[str, str]:
    """Environment for ansible-playbook selecting the strategy (empty: ansible.cfg's default, linear)."""
    wanted = wanted_strategy()
    if not wanted.startswith("mitogen"):
        return {"ANSIBLE_STRATEGY": wanted}
    folder = mitogen_strategy_dir()
    if folder is None:
        return {}
    # our mitogen_linear (Mitogen's, with the collection folders listed once per run) comes first;
    # Mitogen's folder holds its other strategies
    return {
        "ANSIBLE_STRATEGY_PLUGINS": os.pathsep.join([str(OWN_STRATEGY_DIR), str(folder)]),
        "ANSIBLE_STRATEGY": wanted,
    }
