"""Ansible module ovms_client_survey: what a client host holds before the client role changes it (its
media manifest, this deployment's client containers, its model files), in one call to the host."""

from __future__ import annotations

DOCUMENTATION = r"""
module: ovms_client_survey
short_description: Look at what a client host holds before the client role changes it, in one call
description:
  - Looks at C(<data_dir>/media/media.json) when O(media) is true, without following a symbolic link
    or blocking, and hashes it (sha256) when it is a regular file, as M(ansible.builtin.stat) with
    C(follow=false) and C(checksum_algorithm=sha256) reports it (C(exists), C(isreg), C(islnk),
    C(mode), C(uid), C(gid), C(checksum)).
  - Lists the containers of the Docker engine with every label of O(labels), stopped ones too, whose
    name starts with O(prefix) followed by C(-) (this deployment's client containers).
  - Lists everything below C(<data_dir>/model-files), hidden entries too, without following a link, as
    M(ansible.builtin.find) with C(recurse), C(hidden), C(file_type=any) and C(follow=false) does
    (the folder itself left out; a missing folder holds nothing).
  - Changes nothing and runs in check mode. Fails only when the engine cannot be asked or a folder
    cannot be read.
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

from ansible_collections.community.docker.plugins.module_utils._api.errors import DockerException
from ansible_collections.community.docker.plugins.module_utils._api.utils.utils import convert_filters
from ansible_collections.community.docker.plugins.module_utils.common_api import (
    AnsibleDockerClient,
    RequestException,
)
from ansible_collections.ovms.edge.plugins.module_utils.ovms_results import own_containers

CHUNK = 1 << 20


def file_stat(path: str) -> dict[str, Any]:
    """`path` as ansible.builtin.stat (follow false, sha256) reports it; a link or anything else but a
    regular file is never opened, a regular file is opened without following a link or blocking."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return {"exists": False}
    found: dict[str, Any] = {
        "exists": True,
        "isreg": stat.S_ISREG(info.st_mode),
        "islnk": stat.S_ISLNK(info.st_mode),
        "mode": f"{stat.S_IMODE(info.st_mode):04o}",
        "uid": info.st_uid,
        "gid": info.st_gid,
        "size": info.st_size,
    }
    if found["isreg"]:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):  # swapped since the lstat
                return {**found, "isreg": False}
            digest = hashlib.sha256()
            for block in iter(lambda: os.read(fd, CHUNK), b""):
                digest.update(block)
        finally:
            os.close(fd)
        found["checksum"] = digest.hexdigest()
    return found


def tree(root: str) -> list[dict[str, Any]]:
    """Every entry below `root` ({path, isdir, isreg, islnk}), no link followed; [] when it is missing."""
    entries: list[dict[str, Any]] = []

    def fail(error: OSError) -> None:
        if error.errno != errno.ENOENT or error.filename != root:
            raise error

    for folder, dirs, files in os.walk(root, onerror=fail, followlinks=False):
        for name in sorted(dirs) + sorted(files):
            path = f"{folder}/{name}"
            mode = os.lstat(path).st_mode
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
            data_dir=dict(type="path", required=True),
            prefix=dict(type="str", required=True),
            labels=dict(type="list", elements="str", required=True),
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
        client.fail(f"cannot look at {exc.filename or data_dir}: {exc.strerror or exc}")
        return
    try:
        listed = client.get_json(
            "/containers/json", params={"all": 1, "filters": convert_filters({"label": params["labels"]})}
        )
    except (DockerException, RequestException) as exc:
        client.fail(f"cannot ask the Docker engine: {exc}")
        return
    names = [
        name.lstrip("/")
        for container in own_containers(listed or [], params["prefix"])
        for name in container.get("Names") or []
    ]
    client.module.exit_json(changed=False, media_manifest=manifest, containers=names, model_files=model_files)


if __name__ == "__main__":
    main()
