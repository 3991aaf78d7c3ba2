"""Filters of the ovms_camera role: the camera's config file and the URLs a camera serves
(tasks/status.yml). The checks of every value the role writes into the config, a path or a command
are the role's rules (meta/rules.yml), applied by its first task (ovms.edge.ovms_check) and by the
launcher.

The camera simulator's interface (images/camera-sim): it listens on CONTAINER_PORT in its container;
`--config FILE` reads {"port", "streams": [{"name", "file" (null: the built-in sample), "fps"}],
"auth": null | {"username", "password"}}.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

CONTAINER_PORT = 8554
SAMPLE = "sample"
DEFAULT_FPS = 15
# where the media folder is mounted in the container (read-only)
MEDIA_MOUNT = "/media"
# the container label listing the streams a camera serves (read back by tasks/status.yml)
STREAMS_LABEL = "ovms-launcher.camera-streams"


def ovms_camera_streams(streams: Sequence[Mapping[str, Any]] | None) -> list[dict[str, Any]]:
    """The streams as the camera's config lists them: a file is its path in the container, fps an
    integer; no stream at all is the built-in sample."""
    if not streams:
        return [{"name": SAMPLE, "file": None, "fps": DEFAULT_FPS}]
    return [
        {
            "name": str(stream["name"]),
            "file": f"{MEDIA_MOUNT}/{stream['file']}" if stream.get("file") is not None else None,
            "fps": int(stream["fps"]) if stream.get("fps") is not None else DEFAULT_FPS,
        }
        for stream in streams
    ]


def ovms_camera_config(
    streams: Sequence[Mapping[str, Any]] | None, credentials: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The camera's config file (JSON): port, streams, and the basic-authentication credentials."""
    auth = None
    if credentials:
        auth = {"username": str(credentials["username"]), "password": str(credentials["password"])}
    return {"port": CONTAINER_PORT, "streams": ovms_camera_streams(streams), "auth": auth}


def _url_host(address: str) -> str:
    return f"[{address}]" if ":" in address else address


def ovms_camera_urls(names: Sequence[str], address: str, port: Any) -> list[str]:
    """rtsp://address:port/name of each stream (never with credentials)."""
    return [f"rtsp://{_url_host(str(address))}:{port}/{name}" for name in names]


def ovms_camera_status(info: Mapping[str, Any], advertise: str) -> dict[str, Any] | None:
    """One camera's row of `launcher status` from docker_container_info's result (None when the
    container does not exist): state, health, and the URLs it serves where it is published (an
    address of all interfaces is shown as `advertise`, the address other hosts dial)."""
    if not info.get("exists"):
        return None
    container = info.get("container") or {}
    labels = (container.get("Config") or {}).get("Labels") or {}
    names = [n for n in str(labels.get(STREAMS_LABEL, "")).split(",") if n]
    published = (container.get("HostConfig") or {}).get("PortBindings") or {}
    bindings = published.get(f"{CONTAINER_PORT}/tcp") or []
    urls: list[str] = []
    if bindings:
        address = bindings[0].get("HostIp") or "0.0.0.0"
        if address in ("0.0.0.0", "::"):
            address = advertise
        urls = ovms_camera_urls(names, address, bindings[0].get("HostPort") or CONTAINER_PORT)
    state = container.get("State") or {}
    return {
        "name": str(container.get("Name", "")).lstrip("/"),
        "state": state.get("Status", ""),
        "health": (state.get("Health") or {}).get("Status"),
        "image": (container.get("Config") or {}).get("Image", ""),
        "started_at": state.get("StartedAt", ""),
        "streams": names,
        "urls": urls,
    }


class FilterModule:
    def filters(self) -> dict:
        return {
            "ovms_camera_config": ovms_camera_config,
            "ovms_camera_streams": ovms_camera_streams,
            "ovms_camera_urls": ovms_camera_urls,
            "ovms_camera_status": ovms_camera_status,
        }
