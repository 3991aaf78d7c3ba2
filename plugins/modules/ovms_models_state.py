"""Ansible module ovms_models_state: what the server's models folder holds, read in one call."""

from __future__ import annotations

DOCUMENTATION = r"""
module: ovms_models_state
short_description: Read the version folders of a models folder and their checksums.sha256
description:
  - Lists <dir>/<model>/<version>/ (a version is a positive integer) and returns, per model, its
    versions, and per version the text of its checksums.sha256 (empty when missing), so the role
    compares them with the controller's in one round trip. Changes nothing; runs in check mode.
options:
  dir:
    description: The models folder OVMS reads (it may not exist yet).
    type: path
    required: true
author: ovms-launcher developers (@ovms-launcher)
"""

EXAMPLES = r"""
- name: Read what the models folder holds
  ovms.edge.ovms_models_state:
    dir: /var/lib/ovms-launcher/server/models
  register: models_state

- name: Show the versions of every model
  ansible.builtin.debug:
    var: models_state.versions
"""

RETURN = r"""
versions:
  description: Model name -> its version numbers, sorted.
  type: dict
  returned: always
sums:
  description: "<model>/<version> -> the text of its checksums.sha256 ('' when missing)."
  type: dict
  returned: always
version_dirs:
  description: Every version folder, sorted.
  type: list
  returned: always
"""

import re
from pathlib import Path

from ansible.module_utils.basic import AnsibleModule

_VERSION = re.compile(r"^[1-9][0-9]*$")
_MAX_SUMS = 1 << 20


def read_state(root: Path) -> dict:
    versions: dict[str, list[int]] = {}
    sums: dict[str, str] = {}
    dirs: list[str] = []
    if not root.is_dir():
        return {"versions": versions, "sums": sums, "version_dirs": dirs}
    for model in sorted(
        p for p in root.iterdir() if p.is_dir() and not p.is_symlink() and not p.name.startswith(".")
    ):
        found = sorted(int(v.name) for v in model.iterdir() if v.is_dir() and _VERSION.fullmatch(v.name))
        if not found:
            continue
        versions[model.name] = found
        for version in found:
            folder = model / str(version)
            dirs.append(str(folder))
            sums_file = folder / "checksums.sha256"
            text = ""
            if sums_file.is_file() and sums_file.stat().st_size <= _MAX_SUMS:
                text = sums_file.read_text(encoding="utf-8", errors="replace")
            sums[f"{model.name}/{version}"] = text
    return {"versions": versions, "sums": sums, "version_dirs": sorted(dirs)}


def main() -> None:
    module = AnsibleModule(
        argument_spec={"dir": {"type": "path", "required": True}}, supports_check_mode=True
    )
    try:
        state = read_state(Path(module.params["dir"]))
    except OSError as exc:
        module.fail_json(msg=f"cannot read {module.params['dir']}: {exc}")
    module.exit_json(changed=False, **state)


if __name__ == "__main__":
    main()
