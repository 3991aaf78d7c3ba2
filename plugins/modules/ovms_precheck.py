"""Ansible module ovms_precheck: everything a role checks on a host before it changes anything, in one
call (one round trip instead of a task per check)."""

from __future__ import annotations

DOCUMENTATION = r"""
module: ovms_precheck
short_description: Check a host before an ovms-launcher role changes anything on it
description:
  - Talks to the Docker engine (community.docker's client, so O(docker_host) and TLS options work as in
    its modules) and checks, in one call, that the engine speaks O(min_api_version) or newer on one of
    O(architectures); that each folder of O(paths) (or its nearest existing parent) has its free space;
    that each port of O(ports) is free on the host or published by one of our own containers; and which
    of O(images) are missing (returned, not failed; the caller pulls them).
  - Every problem found is reported in one failure message, each naming the host's value and the
    variable to change.
  - Changes nothing; runs in check mode.
options:
  min_api_version:
    description: Oldest Docker Engine API accepted.
    type: str
    default: "1.41"
  architectures:
    description: CPU architectures the images exist for.
    type: list
    elements: str
    default: [x86_64, aarch64]
  paths:
    description:
      - Folders that need free space (they may not exist yet), each {path, variable, min_free_mb, local}
        (the variable that sets the folder, named in messages; the free space it needs, default
        O(min_free_mb); true if it may not be on a network filesystem, see O(network_fs_types)).
    type: list
    elements: dict
    default: []
  min_free_mb:
    description: Free space a folder of O(paths) needs unless it says otherwise.
    type: int
    default: 1024
  network_fs_types:
    description: Filesystem types a folder with C(local) true may not be on.
    type: list
    elements: str
    default: []
  ports:
    description: Host ports that will be published, each a number or {port, variable} (the variable
      that sets it, named in messages).
    type: list
    elements: raw
    default: []
  images:
    description: Images that must be on the host (missing ones are returned in RV(missing_images)).
    type: list
    elements: str
    default: []
  owner_label:
    description: Label of our containers (ports they publish count as free).
    type: str
    default: ovms-launcher.managed=true
extends_documentation_fragment:
  - community.docker.docker.api_documentation
author: ovms-launcher developers (@ovms-launcher)
"""

EXAMPLES = r"""
- name: Check the host before anything changes
  ovms.edge.ovms_precheck:
    min_api_version: "1.41"
    architectures: [x86_64]
    paths:
      - path: /var/lib/ovms-launcher/server
        variable: ovms_server_data_dir
        min_free_mb: 2048
        local: true
    network_fs_types: [nfs, nfs4, cifs]
    ports:
      - port: 9443
        variable: ovms_tls_port
    images: [ovms-launcher/client:dev]
  register: precheck
"""

RETURN = r"""
engine:
  description: Server version, API version and architecture of the engine.
  type: dict
  returned: always
missing_images:
  description: The images of O(images) not on the host.
  type: list
  returned: always
"""

import os
from pathlib import Path

from ansible_collections.community.docker.plugins.module_utils._api.errors import DockerException
from ansible_collections.community.docker.plugins.module_utils._api.utils.utils import parse_repository_tag
from ansible_collections.community.docker.plugins.module_utils.common_api import (
    AnsibleDockerClient,
    RequestException,
)
from ansible_collections.community.docker.plugins.module_utils.util import is_image_name_id
from ansible_collections.community.docker.plugins.module_utils.version import LooseVersion

_LISTEN = "0A"


def listening_ports(proc: str = "/proc/net") -> set[int]:
    """TCP ports something listens on, any address, IPv4 and IPv6 (the host's own network namespace)."""
    ports: set[int] = set()
    for name in ("tcp", "tcp6"):
        try:
            with (Path(proc) / name).open(encoding="ascii") as table:
                next(table, None)
                for line in table:
                    fields = line.split()
                    if len(fields) > 3 and fields[3] == _LISTEN:
                        ports.add(int(fields[1].rsplit(":", 1)[1], 16))
        except OSError:
            continue
    return ports


def free_mb(path: str) -> tuple[str, int]:
    """The nearest existing folder of `path` (it may not exist yet) and the MiB free on its filesystem
    (f_bavail, as df shows it)."""
    current = Path(path).absolute()
    while not current.exists() and current.parent != current:
        current = current.parent
    stats = os.statvfs(current)
    return str(current), stats.f_bavail * stats.f_frsize // (1 << 20)


def _image_present(client: AnsibleDockerClient, image: str) -> bool:
    """As community.docker.docker_image_info looks an image up."""
    if is_image_name_id(image):
        return client.find_image_by_id(image, accept_missing_image=True) is not None
    repository, tag = parse_repository_tag(image)
    return client.find_image(repository, tag or "latest") is not None


def filesystem_type(path: str, mounts: str = "/proc/self/mounts") -> str:
    """The type of the filesystem holding `path` (an existing folder): its longest mount point."""
    best, kind = "", ""
    try:
        with Path(mounts).open(encoding="utf-8") as table:
            for line in table:
                fields = line.split()
                if len(fields) < 3:
                    continue
                point = fields[1].replace("\\040", " ")
                inside = path == point or path.startswith(point.rstrip("/") + "/")
                if inside and len(point) >= len(best):
                    best, kind = point, fields[2]
    except OSError:
        return ""
    return kind


def _port(entry: object) -> tuple[int, str]:
    if isinstance(entry, dict):
        return int(entry["port"]), str(entry.get("variable") or "prechecks_ports")
    return int(str(entry)), "prechecks_ports"


def published_ports(client: AnsibleDockerClient, label: str) -> tuple[set[int], set[int]]:
    """Host ports published by running containers: (ours, everyone else's). With Docker's userland
    proxy off nothing listens on them, so they are not in /proc/net/tcp."""
    ours: set[int] = set()
    theirs: set[int] = set()
    key, _sep, value = label.partition("=")
    for container in client.get_json("/containers/json"):
        ports = {p["PublicPort"] for p in container.get("Ports") or [] if p.get("PublicPort")}
        (ours if (container.get("Labels") or {}).get(key) == value else theirs).update(ports)
    return ours, theirs


def main() -> None:
    client = AnsibleDockerClient(
        argument_spec=dict(
            min_api_version=dict(type="str", default="1.41"),
            architectures=dict(type="list", elements="str", default=["x86_64", "aarch64"]),
            paths=dict(type="list", elements="dict", default=[]),
            min_free_mb=dict(type="int", default=1024),
            network_fs_types=dict(type="list", elements="str", default=[]),
            ports=dict(type="list", elements="raw", default=[]),
            images=dict(type="list", elements="str", default=[]),
            owner_label=dict(type="str", default="ovms-launcher.managed=true"),
        ),
        supports_check_mode=True,
    )
    params = client.module.params
    problems: list[str] = []
    try:
        version = client.version()
        api = version.get("ApiVersion", "0")
        arch = {"amd64": "x86_64", "arm64": "aarch64"}.get(version.get("Arch", ""), version.get("Arch", ""))
        engine = {"version": version.get("Version"), "api_version": api, "architecture": arch}
        if LooseVersion(api) < LooseVersion(params["min_api_version"]):
            problems.append(
                f"Docker engine {engine['version']} speaks API {api}; the deploy needs "
                f"{params['min_api_version']} or newer (Docker 20.10+; prechecks_min_docker_api): "
                "upgrade Docker"
            )
        if arch not in params["architectures"]:
            problems.append(
                f"the engine runs on {arch}; the images exist for {', '.join(params['architectures'])}"
            )
        for entry in params["paths"]:
            where, free = free_mb(entry["path"])
            variable = entry.get("variable") or "prechecks_data_dir"
            needed = int(entry.get("min_free_mb") or params["min_free_mb"])
            if free < needed:
                problems.append(
                    f"{entry['path']} ({variable}, on the filesystem of {where}) has {free} MiB free; "
                    f"the deploy needs {needed} MiB (prechecks_min_free_disk_mb): free space or move "
                    "the data folder"
                )
            kind = filesystem_type(where) if entry.get("local") else ""
            if kind and kind in params["network_fs_types"]:
                problems.append(
                    f"{entry['path']} ({variable}) is on a {kind} network filesystem; it must stay local "
                    f"to this host so nothing remote can change it: move {variable} to a local disk"
                )
        wanted = dict(_port(p) for p in params["ports"])
        if wanted:
            ours, theirs = published_ports(client, params["owner_label"])
            busy = (listening_ports() | theirs) - ours
            for port, variable in sorted(wanted.items()):
                if port in busy:
                    problems.append(
                        f"port {port} is in use by another program on this host ({variable}): free it or "
                        f"change {variable}"
                    )
        missing = [image for image in dict.fromkeys(params["images"]) if not _image_present(client, image)]
    except (DockerException, RequestException) as exc:
        client.fail(f"cannot ask the Docker engine: {exc}")
        return
    if problems:
        client.fail("; ".join(problems), engine=engine, missing_images=missing)
    client.module.exit_json(changed=False, engine=engine, missing_images=missing)


if __name__ == "__main__":
    main()
