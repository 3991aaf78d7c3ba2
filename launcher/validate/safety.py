"""Folders and names an inventory may not use: data folders that are system folders (a deploy chowns
inside them, `launcher destroy --purge` deletes them), and a host named like the controller's own
client certificate.

The rule and the list of system folders live in the `ovms_common` role, which every role applies
itself; this module reads them from there, so the launcher reports the same problems before a run.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Mapping, Sequence
from functools import cache

import yaml

from launcher.inventory import Inventory
from launcher.paths import PROJECT_ROOT
from launcher.pki.plan import CONTROLLER_CLIENT
from launcher.validate.origins import VarOrigins
from launcher.validate.problems import Problem
from launcher.validate.variables import HostVars

COMMON_ROLE = PROJECT_ROOT / "roles" / "ovms_common"
# the data folders a host's variables give (variable -> its prefix and option name, as read from its View)
DATA_DIRS = {
    "ovms_server_data_dir": ("ovms_server_", "data_dir"),
    "ovms_client_data_dir": ("ovms_client_", "data_dir"),
    "ovms_models_dir": ("ovms_models_", "dir"),
}


@cache
def _rule() -> tuple[Callable[[object, Sequence[str]], str], tuple[str, ...]]:
    path = COMMON_ROLE / "filter_plugins" / "ovms_common.py"
    spec = importlib.util.spec_from_file_location("ovms_common_filters", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    defaults = yaml.safe_load((COMMON_ROLE / "defaults" / "main.yml").read_text(encoding="utf-8"))
    return module.ovms_unsafe_dir, tuple(defaults["ovms_common_system_dirs"])


def unsafe_dir(path: object) -> str:
    """Why `path` cannot be a data folder ('' when it can), by the ovms_common role's rule."""
    rule, system_dirs = _rule()
    return rule(path, system_dirs)


def check_data_dirs(hosts: Mapping[str, HostVars], origins: VarOrigins) -> list[Problem]:
    problems: list[Problem] = []
    for name, checked in hosts.items():
        for variable, (prefix, field) in DATA_DIRS.items():
            view = checked.get(prefix)
            value = getattr(view, field) if view is not None else None
            if value is None or variable in checked.deferred:
                continue
            why = unsafe_dir(value)
            if why:
                problems.append(
                    Problem(
                        origins.find(variable, name, checked.host.groups),
                        variable,
                        f"{why}: a deploy chowns inside it and `launcher destroy --purge` deletes it",
                        "give it a folder of its own, e.g. /var/lib/ovms-launcher/server or …/client",
                        (name,),
                    )
                )
    return problems


def check_host_names(inventory: Inventory) -> list[Problem]:
    """A host named like the controller's client certificate would receive its key."""
    return [
        Problem(
            inventory.source_label,
            CONTROLLER_CLIENT,
            f'a host is named "{CONTROLLER_CLIENT}": it would receive the controller\'s own client '
            f"certificate and key (certs/clients/{CONTROLLER_CLIENT}/, which `launcher status` uses)",
            "rename the host in the inventory (keep its address in ansible_host)",
            (CONTROLLER_CLIENT,),
        )
        for host in inventory.hosts.values()
        if host.name == CONTROLLER_CLIENT
    ]
