"""Folders and names an inventory may not use: data folders that are system folders (a deploy chowns
inside them, `launcher destroy --purge` deletes them), and a host named like the controller's own
client certificate.

The rule and the list of system folders live in the `ovms_common` role, which every role applies
itself; this module reads them from there, so the launcher reports the same problems before a run.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache

from launcher.inventory import Inventory
from launcher.pki.layout import controller_client
from launcher.pki.plan import controller_name_clash
from launcher.validate import common_role
from launcher.validate.origins import VarOrigins
from launcher.validate.problems import Problem, from_error
from launcher.validate.variables import HostVars

# the data folders a host's variables give (variable -> its prefix and option name, as read from its View)
DATA_DIRS = {
    "ovms_server_data_dir": ("ovms_server_", "data_dir"),
    "ovms_client_data_dir": ("ovms_client_", "data_dir"),
    "ovms_models_dir": ("ovms_models_", "dir"),
    "ovms_camera_data_dir": ("ovms_camera_", "data_dir"),
}


@cache
def _system_dirs() -> tuple[str, ...]:
    return tuple(common_role.common_defaults()["ovms_common_system_dirs"])


def unsafe_dir(path: object) -> str:
    """Why `path` cannot be a data folder ('' when it can), by the ovms_common role's rule."""
    return str(common_role.filters().ovms_unsafe_dir(path, _system_dirs()))


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
                        "give it a folder of its own, e.g. /var/lib/ovms-launcher/server, …/client "
                        "or …/camera",
                        (name,),
                    )
                )
    return problems


def check_host_names(inventory: Inventory) -> list[Problem]:
    """A host named like the controller's client certificate would receive its key."""
    clash = controller_name_clash(inventory)
    return [] if clash is None else [from_error(clash, hosts=(controller_client(),))]
