"""This deployment's client containers on a host, as the client role's modules list them
(ovms_client_status, ovms_client_survey): their shared options, and one list from the Docker engine
through community.docker's client."""

from __future__ import annotations

from typing import Any

from ansible_collections.community.docker.plugins.module_utils._api.errors import DockerException
from ansible_collections.community.docker.plugins.module_utils._api.utils.utils import convert_filters
from ansible_collections.community.docker.plugins.module_utils.common_api import (
    AnsibleDockerClient,
    RequestException,
)

# The options of the modules that list a client host's containers
LISTING_OPTIONS: dict[str, dict[str, Any]] = {
    "data_dir": {"type": "path", "required": True},
    "prefix": {"type": "str", "required": True},
    "labels": {"type": "list", "elements": "str", "required": True},
}


def own_containers(containers: list[dict[str, Any]], prefix: str) -> list[dict[str, Any]]:
    """The containers of a Docker list whose name is <prefix>-…: the client role's of this deployment."""
    return [
        c for c in containers if any(n.lstrip("/").startswith(f"{prefix}-") for n in c.get("Names") or [])
    ]


def client_containers(client: AnsibleDockerClient) -> list[dict[str, Any]]:
    """The engine's list entries (GET /containers/json, stopped ones too) of the containers with every
    label of the module's `labels` and a name <prefix>-…; the module fails when the engine cannot be
    asked."""
    params = client.module.params
    try:
        listed = client.get_json(
            "/containers/json", params={"all": 1, "filters": convert_filters({"label": params["labels"]})}
        )
    except (DockerException, RequestException) as exc:
        client.fail(f"cannot ask the Docker engine: {exc}")
        raise  # not reached: fail exits
    return own_containers(listed or [], params["prefix"])
