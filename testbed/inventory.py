"""Writes the YAML inventory Ansible (and the launcher) use to reach the harness hosts over SSH."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from launcher.inventory import load_groups

# the launcher's groups (playbooks/vars/groups.yml), in the playbooks' order
GROUPS = tuple(load_groups().values())
SSH_COMMON_ARGS = "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null"


def connection_vars(address: str, private_key: Path) -> dict[str, str]:
    """How Ansible reaches one host: root over SSH with the harness key, Debian's python3."""
    return {
        "ansible_host": address,
        "ansible_user": "root",
        "ansible_ssh_private_key_file": str(private_key),
        "ansible_ssh_common_args": SSH_COMMON_ARGS,
        "ansible_python_interpreter": "/usr/bin/python3",
    }


def build_inventory(
    addresses: Mapping[str, str],
    private_key: Path,
    layout: Mapping[str, Sequence[str]],
    *,
    group_vars: Mapping[str, Mapping[str, Any]] | None = None,
    host_vars: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """The inventory as data: every host under `all` with its connection vars (plus host_vars), the
    groups of `layout` (group name -> hosts, e.g. servers ["host1"], clients ["host2", "host3"]) and
    `group_vars` per group name ("all" for every host)."""
    unknown_groups = set(layout) - set(GROUPS)
    if unknown_groups:
        raise ValueError(f"unknown group(s) {sorted(unknown_groups)}: use {', '.join(GROUPS)}")
    listed = {name for names in layout.values() for name in names}
    missing = listed - set(addresses)
    if missing:
        raise ValueError(f"layout names host(s) the harness does not have: {sorted(missing)}")
    host_vars = host_vars or {}
    group_vars = dict(group_vars or {})
    all_group: dict[str, Any] = {
        "hosts": {
            name: {**connection_vars(addresses[name], private_key), **dict(host_vars.get(name, {}))}
            for name in sorted(listed | set(host_vars))
        },
        "children": {},
    }
    for group in GROUPS:
        entry: dict[str, Any] = {"hosts": {name: None for name in layout.get(group, ())}}
        if group_vars.get(group):
            entry["vars"] = dict(group_vars[group])
        all_group["children"][group] = entry
    if group_vars.get("all"):
        all_group["vars"] = dict(group_vars["all"])
    return {"all": all_group}


def write_inventory(path: Path, inventory: Mapping[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "# Written by the multi-host test harness (testbed/inventory.py).\n"
    text += yaml.safe_dump(dict(inventory), sort_keys=False, default_flow_style=False)
    path.write_text(text, encoding="utf-8")
    return path
