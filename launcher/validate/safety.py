"""Names and folders an inventory may not use, by the rules of roles/ovms_common/meta/rules.yml (the
engine every role's first task applies too): every inventory host name (a DNS name, never the
controller's own client certificate name), and the data folders (a deploy chowns inside them,
`launcher destroy --purge` deletes them), which the `data_dir` rule checks with the host's other
variables (launcher/validate/variables.py)."""

from __future__ import annotations

from functools import cache

from launcher.common_defaults import common_defaults
from launcher.inventory import Inventory
from launcher.validate import rules
from launcher.validate.origins import VarOrigins
from launcher.validate.problems import Problem

# the data folders a host's variables give (variable -> its prefix and option name, as read from its View)
DATA_DIRS = {
    "ovms_server_data_dir": ("ovms_server_", "data_dir"),
    "ovms_client_data_dir": ("ovms_client_", "data_dir"),
    "ovms_models_dir": ("ovms_models_", "dir"),
    "ovms_camera_data_dir": ("ovms_camera_", "data_dir"),
}


@cache
def _folders() -> tuple[tuple[str, ...], tuple[str, ...]]:
    defaults = common_defaults()
    return tuple(defaults["ovms_common_system_dirs"]), tuple(defaults["ovms_common_sensitive_dirs"])


def unsafe_dir(path: object) -> str:
    """Why `path` cannot be a data folder ('' when it can), by the `data_dir` rule with ovms_common's
    default folder lists."""
    system, sensitive = _folders()
    return rules.data_dir_problem(path, system, sensitive)


def check_host_names(inventory: Inventory, origins: VarOrigins | None = None) -> list[Problem]:
    """Every inventory host name against the host rule: a name that is no DNS name becomes a path of
    the PKI (`camera-1/../launcher` would receive another host's key), the controller's own name
    would receive its key."""
    layout = {"ovms_common_pki_layout": common_defaults()["ovms_common_pki_layout"]}
    problems: list[Problem] = []
    for host in inventory.hosts.values():
        for message in rules.host_name(host.name, layout):
            where = origins.find("", host.name, host.groups) if origins is not None else ""
            problems.append(
                Problem(
                    where or inventory.source_label,
                    host.name,
                    f"inventory host name {host.name!r}: {message}",
                    "rename the host in the inventory (its address stays in ansible_host)",
                    (host.name,),
                )
            )
    return problems
