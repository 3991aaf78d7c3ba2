"""Documentation of the action plugin ovms_client_devices (plugins/action/ovms_client_devices.py): the
video devices of a profile as this host has them (the client role's device check,
roles/ovms_client/tasks/devices.yml)."""

from __future__ import annotations

DOCUMENTATION = r"""
module: ovms_client_devices
short_description: Check this host has a profile's video devices and give what the client container needs
description:
  - Reads O(output), the client's own check of a profile (C(--check --json)), on the controller with the
    filter ovms.edge.ovms_client_checked, which refuses any device path but C(/dev/videoN), any
    unsafe stage and any results file name that is not a plain file name; a reading it refuses fails
    the task naming the profile.
  - Looks at each device the profile reads on this host (ansible.builtin.stat, not following a symbolic
    link); a profile that reads no device costs no call to the host.
  - A path that is missing, or is no character device, is missing; a device whose group is root's
    (gid 0) is refused, as passing its group would put the client in root's group.
  - Returns the client container's device list (each device read and write at the same path) and the
    host's group of each device, by gid, with O(profile) and the reading's C(stages) and C(outputs).
  - Fails when a device is missing or in root's group, naming the inventory host, O(profile), the
    devices and the fix; changes nothing and runs in check mode.
options:
  output:
    description: The output of the client's check of the profile (its last JSON line is the reading).
    type: str
    required: true
  profile:
    description: The profile's name (returned, and named by the messages).
    type: str
    required: true
author: ovms-launcher developers (@ovms-launcher)
"""

EXAMPLES = r"""
- name: Check the video devices of a profile
  ovms.edge.ovms_client_devices:
    output: "{{ check_result.container.Output }}"
    profile: shelf-cam
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
  description: The C(stages) of the reading, as the filter checked them.
  type: list
  elements: dict
  returned: always
outputs:
  description: The C(outputs) of the reading, as the filter checked them (C(detections), and the plain
    file names C(detections_file) and C(stats_file) of the client's results).
  type: dict
  returned: always
"""
