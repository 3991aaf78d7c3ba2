"""An inventory layered on the shipped localhost inventory that renames everything a deploy creates
(containers, networks, data folders) after a tag, so a test or benchmark never touches a deployment
already running on the machine."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


def isolation_vars(tag: str, data: Path) -> dict[str, str]:
    """The variables that name what a deploy creates: server, network, client prefix, monitoring, data
    folders."""
    return {
        "ovms_server_data_dir": str(data / "server"),
        "ovms_server_network": tag,
        "ovms_server_container_name": f"{tag}-server",
        "ovms_client_data_dir": str(data / "client"),
        "ovms_client_network": tag,
        "ovms_client_container_prefix": f"{tag}-client",
        # role ovms_monitoring (its other containers are named after this one)
        "ovms_monitoring_container_name": f"{tag}-monitoring",
        "ovms_monitoring_network": f"{tag}-monitoring",
        "ovms_monitoring_data_dir": str(data / "monitoring"),
    }


def write_isolation(folder: Path, tag: str, data: Path, **extra: Any) -> Path:
    """An inventory folder (hosts.yml with no host, group_vars/all.yml) with isolation_vars and
    `extra`; pass it with -i after inventories/localhost."""
    (folder / "group_vars").mkdir(parents=True, exist_ok=True)
    (folder / "hosts.yml").write_text("all: {}\n")
    variables = {**isolation_vars(tag, data), **extra}
    (folder / "group_vars" / "all.yml").write_text(yaml.safe_dump(variables, sort_keys=False))
    return folder
