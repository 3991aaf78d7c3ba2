"""Ansible module ovms_client_survey: what a client host holds before the client role changes it (its
media manifest, this deployment's client containers, its model files), in one call to the host."""

from __future__ import annotations

DOCUMENTATION = r"""
module: ovms_client_survey
short_description: Look at what a client host holds before the client role changes it, in one call
description:
  - Looks at C(<data_dir>/media/media.json) when O(media) is true (its last path component never
    followed, never waited on), and hashes it (sha256) when it is a regular file, as
    M(ansible.builtin.stat) with C(follow=false) and C(checksum_algorithm=sha256) reports it
    (C(exists), C(isreg), C(islnk), C(mode), C(uid), C(gid), C(checksum)). A file replaced between the
    look and the read is reported as no regular file.
  - Lists the containers of the Docker engine with every label of O(labels), stopped ones too, whose
    name starts with O(prefix) followed by C(-) (this deployment's client containers).
  - Lists everything below C(<data_dir>/model-files), hidden entries too, as M(ansible.builtin.find)
    with C(recurse), C(hidden), C(file_type=any) and C(follow=false) does (no link below the folder is
    followed; the folder itself left out; a missing folder holds nothing; an entry gone meanwhile is
    left out). Each C(path) starts with O(data_dir) as given, followed by C(/model-files/).
  - Changes nothing and runs in check mode. Fails when the engine cannot be asked, or a folder cannot
    be read (the message names it and the fix).
options:
  data_dir:
    description: The client data folder (ovms_client_data_dir).
    type: path
    required: true
  prefix:
    description: The client containers' name prefix (ovms_client_container_prefix).
    type: str
    required: true
  labels:
    description: The labels (C(key=value)) every listed container carries.
    type: list
    elements: str
    required: true
  media:
    description: Whether to look at the media manifest (false when the host gets no media).
    type: bool
    default: true
extends_documentation_fragment:
  - community.docker.docker.api_documentation
author: ovms-launcher developers (@ovms-launcher)
"""

EXAMPLES = r"""
- name: Survey this host
  ovms.edge.ovms_client_survey:
    data_dir: /var/lib/ovms-launcher/client
    prefix: ovms-client
    labels: [ovms-launcher.managed=true, ovms-launcher.role=client]
  register: ovms_client_survey
"""

RETURN = r"""
media_manifest:
  description: The media manifest as M(ansible.builtin.stat) reports a file (C(exists) false when it is
    missing; C({}) when O(media) is false).
  type: dict
  returned: success
containers:
  description: The names (without C(/)) of the listed containers.
  type: list
  elements: str
  returned: success
model_files:
  description: Each entry below the model files folder, C(path), C(isdir), C(isreg) and C(islnk).
  type: list
  elements: dict
  returned: success
"""

import errno
import hashlib
import os
import stat
from typing import Any

from ansible_collections.community.docker.plugins.module_utils.common_api import AnsibleDockerClient
from ansible_collections.ovms.edge.plugins.module_utils.ovms_client_containers import (
    LISTING_OPTIONS,
    client_containers,
)

CHUNK = 1 << 20


def _described(info: os.stat_result) -> dict[str, Any]:
    return {
        "exists": True,
        "isreg": stat.S_ISREG(info.st_mode),
        "islnk": stat.S_ISLNK(info.st_mode),
        "mode": f"{stat.S_IMODE(info.st_mode):04o}",
        "uid": info.st_uid,
        "gid": info.st_gid,
        "size": info.st_size,
    }


def file_stat(path: str) -> dict[str, Any]:
    """`path` as ansible.builtin.stat (follow false, sha256) reports it. Only a regular file is opened
    (its last component not followed, without blocking), and reported from what was opened: a file
    replaced between the look and the open is reported as no regular file (so never current)."""
    try:
        seen = os.lstat(path)
    except FileNotFoundError:
        return {"exists": False}
    if not stat.S_ISREG(seen.st_mode):
        return _described(seen)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:  # replaced meanwhile (a link: ELOOP; gone: ENOENT; a FIFO: ENXIO)
        return {**_described(seen), "isreg": False}
    try:
        opened = os.fstat(fd)
        if not stat.S_ISREG(opened.st_mode) or (opened.st_dev, opened.st_ino) != (seen.st_dev, seen.st_ino):
            return {**_described(opened), "isreg": False}
        digest = hashlib.sha256()
        for block in iter(lambda: os.read(fd, CHUNK), b""):
            digest.update(block)
    finally:
        os.close(fd)
    return {**_described(opened), "checksum": digest.hexdigest()}


def tree(root: str) -> list[dict[str, Any]]:
    """Every entry below `root` ({path, isdir, isreg, islnk}, each path `root/...` as given), no link
    followed below it; [] when it is missing. An entry gone while it is walked is left out."""
    entries: list[dict[str, Any]] = []

    def fail(error: OSError) -> None:
        if error.errno != errno.ENOENT:
            raise error

    for folder, dirs, files in os.walk(root, onerror=fail, followlinks=False):
        for name in sorted(dirs) + sorted(files):
            path = f"{folder}/{name}"
            try:
                mode = os.lstat(path).st_mode
            except FileNotFoundError:
                continue
            entries.append(
                {
                    "path": path,
                    "isdir": stat.S_ISDIR(mode),
                    "isreg": stat.S_ISREG(mode),
                    "islnk": stat.S_ISLNK(mode),
                }
            )
    return entries


def main() -> None:
    client = AnsibleDockerClient(
        argument_spec=dict(
            **LISTING_OPTIONS,
            media=dict(type="bool", default=True),
        ),
        supports_check_mode=True,
    )
    params = client.module.params
    data_dir = params["data_dir"]
    try:
        manifest = file_stat(f"{data_dir}/media/media.json") if params["media"] else {}
        model_files = tree(f"{data_dir}/model-files")
    except OSError as exc:
        client.fail(
            f"cannot look at {exc.filename or data_dir}: {exc.strerror or exc}. The client data folder "
            f"{data_dir} (ovms_client_data_dir), its media and its model-files must be folders root can "
            "read: move what stands in their place, or set ovms_client_data_dir to another folder"
        )
        return
    names = [
        name.lstrip("/") for container in client_containers(client) for name in container.get("Names") or []
    ]
    client.module.exit_json(changed=False, media_manifest=manifest, containers=names, model_files=model_files)


if __name__ == "__main__":
    main()
