"""Lookup ovms_client_profile_odd: what a local profile folder on the controller holds besides folders and
regular files with one name."""

from __future__ import annotations

DOCUMENTATION = r"""
name: ovms_client_profile_odd
short_description: The entries of a local profile folder that are no folder nor a one-name regular file
description:
  - "Walks the profile folder given as the term, on the controller, hidden entries included, without
    following a link, and returns each entry that is a symbolic link, a hard link (a regular file with
    more than one name: the copy would ship the file it shares, a key of the controller, say), a FIFO,
    a socket or a device, as C(<path> (<what>)), sorted by path."
  - "The launcher's loader refuses the same (client/profile.py), a staged profile's module too
    (ovms_client_stage). The folder itself is the inventory's (it may be a link to a folder); one that
    does not exist, or is no folder, holds nothing odd (the copy that follows names it)."
options:
  _terms:
    description: The profile folder (one path).
    required: true
"""

EXAMPLES = r"""
- name: Stop when the profile holds a link or a special file
  ansible.builtin.assert:
    that: odd | length == 0
    fail_msg: "{{ odd | join(', ') }}"
  vars:
    odd: "{{ query('ovms.edge.ovms_client_profile_odd', '/srv/profiles/person-detection') }}"
"""

RETURN = r"""
_raw:
  description: One C(<path> (<what>)) per odd entry, sorted by path; empty when there is none.
  type: list
  elements: str
"""

import os
import stat
from pathlib import Path
from typing import Any

from ansible.errors import AnsibleLookupError
from ansible.plugins.lookup import LookupBase


def _what(info: os.stat_result) -> str | None:
    """Why an entry is odd, or None for a folder or a regular file with one name."""
    if stat.S_ISLNK(info.st_mode):
        return "a symbolic link"
    if stat.S_ISREG(info.st_mode):
        return f"a hard link, {info.st_nlink} names for one file" if info.st_nlink > 1 else None
    if stat.S_ISDIR(info.st_mode):
        return None
    return "a special file"


def profile_odd(root: Path) -> list[str]:
    """The entries the lookup returns for the folder `root` (see DOCUMENTATION)."""
    if not root.is_dir():
        return []
    odd = []
    for folder, dirs, files in os.walk(root, followlinks=False):
        for name in (*dirs, *files):
            path = Path(os.path.normpath(Path(folder) / name))
            what = _what(path.lstat())
            if what:
                odd.append(f"{path} ({what})")
    return sorted(odd)


class LookupModule(LookupBase):
    def run(self, terms: list[Any], variables: Any = None, **kwargs: Any) -> list[str]:
        if len(terms) != 1:
            raise AnsibleLookupError(
                f"ovms_client_profile_odd takes one profile folder, not {len(terms)} terms"
            )
        try:
            return profile_odd(Path(str(terms[0])))
        except OSError as error:
            raise AnsibleLookupError(f"ovms_client_profile_odd: cannot read {terms[0]}: {error}") from error
