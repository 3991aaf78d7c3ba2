"""Put a verified model version folder in place of the one OVMS serves, in one step."""

from __future__ import annotations

DOCUMENTATION = r"""
module: ovms_models_swap
short_description: Put a verified model version folder in place of the served one, atomically
description:
  - OVMS polls its models folder. Replacing a version folder with two renames run as two tasks leaves
    it missing for a moment, and a poll in that moment unloads the version.
  - When O(dest) exists, O(src) and O(dest) are exchanged with Linux C(renameat2(RENAME_EXCHANGE)),
    so the version is never missing; O(src) then holds the previous copy, for the caller to remove.
  - Where the kernel, C library or file system cannot exchange, O(dest) is renamed to O(src)V(.old)
    and O(src) to O(dest) in this one process, microseconds apart.
  - When O(dest) does not exist, O(src) is renamed to it.
options:
  src:
    description: The verified folder (same file system as O(dest)).
    type: path
    required: true
  dest:
    description: The version folder OVMS reads.
    type: path
    required: true
author: ovms-launcher developers (@ovms-launcher)
"""

EXAMPLES = r"""
- name: Put the verified version 2 of person-detection in place
  ovms.edge.ovms_models_swap:
    src: /var/lib/ovms-launcher/server/models/.staging-person-detection-2
    dest: /var/lib/ovms-launcher/server/models/person-detection/2
  register: swapped

- name: Remove the previous copy
  ansible.builtin.file:
    path: "{{ swapped.previous }}"
    state: absent
  when: swapped.previous | default('', true) | length > 0
"""

RETURN = r"""
method:
  description: C(exchange), C(renames) (the fallback) or C(rename) (no previous copy).
  type: str
  returned: changed
previous:
  description: Where the previous copy is now (to remove), or null.
  type: str
  returned: always
model:
  description: The model of O(dest) (its parent folder's name); in check mode too, so a dry run names it.
  type: str
  returned: always
version:
  description: The version of O(dest) (its folder's name); in check mode too.
  type: str
  returned: always
"""

import ctypes
import errno
import os
import shutil
from pathlib import Path

from ansible.module_utils.basic import AnsibleModule

AT_FDCWD = -100
RENAME_EXCHANGE = 2
# the kernel, the C library or the file system cannot exchange: fall back to two renames
_UNSUPPORTED = {errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP}


def exchange(first: str, second: str) -> bool:
    """Swap two paths atomically; False when this system cannot, OSError on any other failure."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    renameat2.restype = ctypes.c_int
    if renameat2(AT_FDCWD, os.fsencode(first), AT_FDCWD, os.fsencode(second), RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in _UNSUPPORTED:
        return False
    raise OSError(code, os.strerror(code), f"{first} <-> {second}")


def swap(src: str, dest: str) -> tuple[str, str | None]:
    """(method, where the previous copy is now)."""
    if not os.path.lexists(dest):
        Path(src).rename(dest)
        return "rename", None
    if exchange(src, dest):
        return "exchange", src
    previous = f"{src}.old"
    if os.path.lexists(previous):  # left by an interrupted run
        shutil.rmtree(previous)
    Path(dest).rename(previous)
    try:
        Path(src).rename(dest)
    except OSError:
        Path(previous).rename(dest)
        raise
    return "renames", previous


def main() -> None:
    module = AnsibleModule(
        argument_spec={"src": {"type": "path", "required": True}, "dest": {"type": "path", "required": True}},
        supports_check_mode=True,
    )
    src, dest = module.params["src"], module.params["dest"]
    placed = {"model": Path(dest).parent.name, "version": Path(dest).name}
    if module.check_mode:  # a dry run copied nothing into src: it would be put in place
        module.exit_json(changed=True, previous=None, **placed)
    if not Path(src).is_dir():
        module.fail_json(msg=f"{src}: the verified folder is missing; nothing was changed in {dest}")
    try:
        method, previous = swap(src, dest)
    except OSError as exc:
        module.fail_json(msg=f"could not put {src} in place of {dest}: {exc}; {dest} is unchanged")
    module.exit_json(changed=True, method=method, previous=previous, **placed)


if __name__ == "__main__":
    main()
