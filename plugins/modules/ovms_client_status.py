"""Ansible module ovms_client_status: this host's client containers and the latest stats line of each,
in one call to the host (the status of roles/ovms_client)."""

from __future__ import annotations

DOCUMENTATION = r"""
module: ovms_client_status
short_description: List this deployment's client containers and read each one's latest stats line
description:
  - Lists the containers of the Docker engine with every label of O(labels), stopped ones too, and
    keeps those whose name starts with O(prefix) followed by C(-) (this deployment's clients).
  - For each, reads the last line of its stats file, C(<data_dir>/results/<profile>-<instance>/<name>),
    where the container's labels give the profile, the instance and the file's name
    (C(ovms-launcher.stats-file), set at deploy from the client's own reading of its profile).
  - The results folder belongs to the client's user; the file is read by the rules of module_utils
    ovms_results, which never leave the instance's own results folder, follow no symbolic link, wait on
    no FIFO, read only the last O(max_bytes) bytes and take the newest rotated file when the current one
    was just rotated. Each read is bounded by O(read_timeout) seconds and all of them by
    O(total_timeout) (a file not read in time shows no stats, with a message). The labels must name one
    file in one instance's folder (C(<profile>-<instance>) and the file's name each a plain name).
  - A file that is missing or refused, or a container without the label, gives that client no stats
    line and a message; the task does not fail for it. Only an engine that cannot be asked fails it.
  - Changes nothing and runs in check mode.
options:
  data_dir:
    description: The client data folder (ovms_client_data_dir); its C(results) folder is the trusted root.
    type: path
    required: true
  prefix:
    description: The client containers' name prefix (ovms_client_container_prefix).
    type: str
    required: true
  labels:
    description: The labels (C(key=value)) every listed container carries (ovms_client_container_labels).
    type: list
    elements: str
    required: true
  max_bytes:
    description: The most bytes read from the end of each stats file.
    type: int
    default: 262144
  read_timeout:
    description: Seconds each file's read may take at most (the engine's own timeout is O(timeout)).
    type: int
    default: 10
  total_timeout:
    description: Seconds all the reads may take together; the files left are not read.
    type: int
    default: 40
extends_documentation_fragment:
  - community.docker.docker.api_documentation
author: ovms-launcher developers (@ovms-launcher)
"""

EXAMPLES = r"""
- name: Read this host's client containers and their stats
  ovms.edge.ovms_client_status:
    data_dir: /var/lib/ovms-launcher/client
    prefix: ovms-client
    labels: [ovms-launcher.managed=true, ovms-launcher.role=client]
  register: ovms_client_status_read
"""

RETURN = r"""
containers:
  description: The engine's list entries (C(GET /containers/json)) of this deployment's client containers.
  type: list
  elements: dict
  returned: success
stats:
  description: One entry per container, in the same order, C(name) its C(<profile>-<instance>), C(stdout)
    its latest whole stats line (empty when none was read) and C(msg) why none was read (else absent).
  type: list
  elements: dict
  returned: success
"""

import signal
import time
from pathlib import PurePosixPath
from typing import Any

from ansible_collections.community.docker.plugins.module_utils.common_api import AnsibleDockerClient
from ansible_collections.ovms.edge.plugins.module_utils.ovms_client_containers import (
    LISTING_OPTIONS,
    client_containers,
)
from ansible_collections.ovms.edge.plugins.module_utils.ovms_results import (
    Refused,
    instance_name,
    read_tail,
    stats_path,
)


class _TimedOut(Exception):
    pass


def _alarm(signum: int, frame: Any) -> None:
    raise _TimedOut()


def _read(labels: dict[str, Any], results: str, max_bytes: int, seconds: int) -> dict[str, str]:
    """{name, stdout: the latest whole stats line or '', msg: why none was read (else absent)}."""
    entry = {"name": instance_name(labels), "stdout": ""}
    path = ""
    signal.alarm(max(1, seconds))
    try:
        path, root = stats_path(results, labels)
        entry["stdout"] = read_tail(path, root, 1, max_bytes)["stdout"]
        signal.alarm(0)
    except Refused as exc:
        signal.alarm(0)
        entry["msg"] = f"{path}: refused: {exc}" if path else str(exc)
    except OSError as exc:
        signal.alarm(0)
        entry["msg"] = f"{path}: not read: {exc.strerror or exc}"
    except _TimedOut:
        entry["msg"] = f"{path}: not read within {seconds} s"
    finally:
        signal.alarm(0)
    return entry


def main() -> None:
    client = AnsibleDockerClient(
        argument_spec=dict(
            **LISTING_OPTIONS,
            max_bytes=dict(type="int", default=262144),
            read_timeout=dict(type="int", default=10),
            total_timeout=dict(type="int", default=40),
        ),
        supports_check_mode=True,
    )
    params = client.module.params
    containers = client_containers(client)
    signal.signal(signal.SIGALRM, _alarm)
    results = str(PurePosixPath(params["data_dir"]) / "results")
    deadline = time.monotonic() + params["total_timeout"]
    stats = []
    for container in containers:
        labels = container.get("Labels") or {}
        left = int(deadline - time.monotonic())
        if left < 1:
            stats.append(
                {
                    "name": instance_name(labels),
                    "stdout": "",
                    "msg": f"not read: the reads took their {params['total_timeout']} s (total_timeout)",
                }
            )
            continue
        stats.append(_read(labels, results, params["max_bytes"], min(params["read_timeout"], left)))
    client.module.exit_json(changed=False, containers=containers, stats=stats)


if __name__ == "__main__":
    main()
