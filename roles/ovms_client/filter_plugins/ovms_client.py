"""Filters of the ovms_client role."""

from __future__ import annotations

import json


def ovms_client_instances(profiles: list[dict]) -> list[str]:
    """<profile>-<n> of every profile instance, n from 1: results folder and container name suffix."""
    return [
        f"{profile['name']}-{n}"
        for profile in profiles
        for n in range(1, int(profile.get("instances", 1)) + 1)
    ]


def ovms_client_instance_containers(service: dict, profile: dict, prefix: str, data_dir: str) -> list[dict]:
    """The container specs of a profile's instances (roles/ovms_common/tasks/container.yml): `service`
    with, for instance n, its name <prefix>-<profile>-<n>, its own results folder at /results and
    its profile and instance labels."""
    specs = []
    for n in range(1, int(profile.get("instances", 1)) + 1):
        results = {
            "type": "bind",
            "source": f"{data_dir}/results/{profile['name']}-{n}",
            "target": "/results",
        }
        labels = {
            **service.get("labels", {}),
            "ovms-launcher.profile": profile["name"],
            "ovms-launcher.instance": str(n),
        }
        specs.append(
            {
                **service,
                "name": f"{prefix}-{profile['name']}-{n}",
                "mounts": [*service.get("mounts", []), results],
                "labels": labels,
            }
        )
    return specs


def ovms_client_instance_name(labels: dict) -> str:
    """<profile>-<instance> of a client container, from its labels (its results folder name)."""
    return f"{labels.get('ovms-launcher.profile', 'unknown')}-{labels.get('ovms-launcher.instance', '1')}"


def ovms_client_stats(results: list[dict]) -> list[dict]:
    """One entry per client from `tail -n 1 stats.jsonl` results: latest fps, p95, dropped, frames."""
    clients = []
    for result in results:
        entry: dict = {"name": result.get("ovms_client_status_name")}
        line = (result.get("stdout") or "").strip()
        try:
            stats = json.loads(line) if line else {}
        except ValueError:
            stats = {}
        for key in ("fps", "latency_p50_ms", "latency_p95_ms", "dropped", "errors", "frames", "ts"):
            entry[key] = stats.get(key)
        clients.append(entry)
    return clients


def ovms_client_containers(containers: list[dict]) -> list[dict]:
    """Summary rows (name, state, health, image, status) from docker_host_info's container list."""
    rows = []
    for container in containers:
        status = str(container.get("Status") or "")
        health = None
        for word in ("healthy", "unhealthy", "starting"):
            if f"({word})" in status or f"(health: {word})" in status:
                health = word
        rows.append(
            {
                "name": (container.get("Names") or ["?"])[0].lstrip("/"),
                "state": container.get("State"),
                "health": health,
                "image": container.get("Image"),
                "status": status,
            }
        )
    return rows


def ovms_client_own(containers: list[dict], prefix: str) -> list[dict]:
    """The containers of docker_host_info's list whose name is <prefix>-…: this role's clients."""
    return [
        c for c in containers if any(n.lstrip("/").startswith(f"{prefix}-") for n in c.get("Names") or [])
    ]


class FilterModule:
    def filters(self) -> dict:
        return {
            "ovms_client_instances": ovms_client_instances,
            "ovms_client_instance_name": ovms_client_instance_name,
            "ovms_client_instance_containers": ovms_client_instance_containers,
            "ovms_client_stats": ovms_client_stats,
            "ovms_client_containers": ovms_client_containers,
            "ovms_client_own": ovms_client_own,
        }
