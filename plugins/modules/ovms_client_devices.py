"""Ansible module ovms_client_devices: the video devices of a profile as this host has them (the
client role's device check, roles/ovms_client/tasks/devices.yml)."""

from __future__ import annotations

DOCUMENTATION = r"""
module: ovms_client_devices
short_description: Check this host has a profile's video devices and give what the client container needs
description:
  - Looks at each device of O(reading) (the client's own check of a profile, read by the filter
    ovms.edge.ovms_client_checked, which refuses any device path but C(/dev/videoN); pass only what it
    returns) on this host, without following a symbolic link.
  - A path that is missing, or is no character device, is missing; a device whose group is root's
    (gid 0) is refused, as passing its group would put the client in root's group.
  - Returns the client container's device list (each device read and write at the same path) and the
    host's group of each device, by gid, with O(profile) and the reading's C(stages).
  - Fails when a device is missing or in root's group, naming O(host), O(profile), the devices and
    the fix; changes nothing and runs in check mode.
options:
  reading:
    description: The client's check of the profile; its C(devices) (paths C(/dev/videoN)) and C(stages)
      are used.
    type: dict
    required: true
  profile:
    description: The profile's name (returned, and named by the messages).
    type: str
    required: true
  host:
    description: The inventory name of this host, named by the messages.
    type: str
    required: true
author: ovms-launcher developers (@ovms-launcher)
"""

EXAMPLES = r"""
- name: Check the video devices of a profile
  ovms.edge.ovms_client_devices:
    reading: "{{ check_output | ovms.edge.ovms_client_checked('shelf-cam') }}"
    profile: shelf-cam
    host: "{{ inventory_hostname }}"
  register: ovms_client_profile_devices
"""

RETURN = r"""
profile:
  description: O(profile).
  type: str
  returned: always
devices:
  description: The container's devices, C(/dev/videoN:/dev/videoN:rw) each.
  type: list
  elements: str
  returned: always
groups:
  description: The gid of each device's group, once each, as strings.
  type: list
  elements: str
  returned: always
missing:
  description: The devices this host lacks (or has as something else than a character device).
  type: list
  elements: str
  returned: always
root_group:
  description: The devices whose group is root's.
  type: list
  elements: str
  returned: always
stages:
  description: The C(stages) of O(reading), as they were.
  type: list
  elements: dict
  returned: always
"""

import os
import stat
from typing import Any

from ansible.module_utils.basic import AnsibleModule


def look(paths: list[str]) -> dict[str, list[str]]:
    """{devices, groups, missing, root_group} of the device paths on this host (lstat: a link is no
    device)."""
    found: dict[str, list[str]] = {"devices": [], "groups": [], "missing": [], "root_group": []}
    for path in paths:
        try:
            info = os.lstat(path)
        except OSError:
            found["missing"].append(path)
            continue
        if not stat.S_ISCHR(info.st_mode):
            found["missing"].append(path)
        elif info.st_gid == 0:
            found["root_group"].append(path)
        else:
            found["devices"].append(f"{path}:{path}:rw")
            if str(info.st_gid) not in found["groups"]:
                found["groups"].append(str(info.st_gid))
    return found


def problem(host: str, profile: str, found: dict[str, list[str]]) -> str | None:
    """The message of the first problem found (a missing device before one in root's group), or None."""
    if found["missing"]:
        devices = ", ".join(found["missing"])
        return (
            f"host {host}: profile {profile} reads video device {devices}, which this host "
            "lacks (no character device at that path); no client container of this host was started or "
            "changed. Plug the camera in (`ls -l /dev/video*` on the host), or change the profile's input "
            "(profile.yaml, profile.env, or CLIENT_INPUT in ovms_client_env)."
        )
    if found["root_group"]:
        devices = ", ".join(found["root_group"])
        return (
            f"host {host}: profile {profile} reads video device {devices}, whose group "
            "is root (gid 0): the client would join root's group to read it. Give the device the `video` "
            "group (a udev rule, as Debian's does: `ls -l /dev/video*` shows the group); no client container "
            "of this host was started or changed."
        )
    return None


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "reading": {"type": "dict", "required": True},
            "profile": {"type": "str", "required": True},
            "host": {"type": "str", "required": True},
        },
        supports_check_mode=True,
    )
    reading: dict[str, Any] = module.params["reading"]
    profile, host = module.params["profile"], module.params["host"]
    paths = reading.get("devices")
    if not isinstance(paths, list) or not all(isinstance(p, str) and p.startswith("/") for p in paths):
        module.fail_json(msg=f"profile {profile}: the reading gives devices {paths!r}, not a list of paths")
    stages = reading.get("stages") or []
    found = look(paths)
    result = {"changed": False, "profile": profile, "stages": stages, **found}
    message = problem(host, profile, found)
    if message:
        module.fail_json(msg=message, **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
