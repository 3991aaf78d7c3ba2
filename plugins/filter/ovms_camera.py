"""Filters of the ovms_camera role: the checks of every value the role writes into the camera's config
file, a path or a command (tasks/validate.yml asserts them before anything changes; the launcher's
validation imports this module and applies the same code), the config file itself, and the URLs a
camera serves (tasks/status.yml).

The camera simulator's interface (images/camera-sim): it listens on CONTAINER_PORT in its container;
`--config FILE` reads {"port", "streams": [{"name", "file" (null: the built-in sample), "fps"}],
"auth": null | {"username", "password"}}.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

CONTAINER_PORT = 8554
SAMPLE = "sample"
DEFAULT_FPS = 15
FPS_RANGE = (1, 60)
STREAM_NAME = re.compile(r"^[A-Za-z0-9._-]+$")
# where the media folder is mounted in the container (read-only)
MEDIA_MOUNT = "/media"
# the container label listing the streams a camera serves (read back by tasks/status.yml)
STREAMS_LABEL = "ovms-launcher.camera-streams"
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

Finding = tuple[str, str]  # (full key, message)


def _integer(value: Any) -> int | None:
    """An integer as the role reads it (a digit string from -e too); None for anything else."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return None


# --- one value each: the launcher's rules (launcher/validate/rules.py) run these per option ---------
# Each returns why the value is refused (None when it is fine); a message never shows a password.


def port_problem(port: Any) -> str | None:
    number = _integer(port)
    if number is None or not 1 <= number <= 65535:
        return f"must be a port number from 1 to 65535 (got {port!r})"
    return None


def bind_address_problem(address: Any) -> str | None:
    try:
        ipaddress.ip_address(address if isinstance(address, str) else "")
    except ValueError:
        return (
            f"{address!r} is not an IPv4 or IPv6 address: give one of the host's addresses "
            "(127.0.0.1 for this host only, 0.0.0.0 or :: for all of them)"
        )
    return None


def name_problem(name: Any) -> str | None:
    if isinstance(name, str) and STREAM_NAME.match(name):
        return None
    return f"{name!r} is no stream name: letters, digits, '.', '_', '-'"


def file_problem(file: Any) -> str | None:
    if not isinstance(file, str) or not file.strip():
        return f"must be a file name relative to ovms_camera_media_dir (got {file!r})"
    if file.startswith(("/", "\\")):
        return f"{file!r} is absolute: give the file's path relative to ovms_camera_media_dir"
    if ".." in re.split(r"[/\\]", file) or _CONTROL.search(file):
        return f"{file!r} leaves the media folder or holds a control character: name a file in it"
    return None


def fps_problem(fps: Any) -> str | None:
    number = _integer(fps)
    if number is None or not FPS_RANGE[0] <= number <= FPS_RANGE[1]:
        low, high = FPS_RANGE
        return f"must be a whole number of frames per second from {low} to {high} (got {fps!r})"
    return None


def username_problem(username: Any) -> str | None:
    if isinstance(username, str) and username and ":" not in username and username.isprintable():
        return None
    return "must be a non-empty printable string without ':'"


def password_problem(password: Any) -> str | None:
    if isinstance(password, str) and password and password.isprintable():
        return None
    return "must be a non-empty printable string"


# --- across the streams: each name once, each file in the media folder (on the controller) ---------


def streams_findings(streams: Any, media_dir: Any, variable: str = "ovms_camera_streams") -> list[Finding]:
    findings: list[Finding] = []
    seen: set[str] = set()
    folder = Path(str(media_dir)) if media_dir not in (None, "") else None
    for index, stream in enumerate(streams if isinstance(streams, list) else []):
        if not isinstance(stream, Mapping):
            continue
        key = f"{variable}[{index}]"
        name, file = stream.get("name"), stream.get("file")
        if isinstance(name, str) and name in seen:
            findings.append((f"{key}.name", f"{name!r} is the name of an earlier stream: give each its own"))
        seen.add(str(name))
        if file is None or file_problem(file):
            continue
        if folder is None:
            findings.append(
                (f"{key}.file", f"{file!r} needs ovms_camera_media_dir, the controller folder holding it")
            )
        # checked where the folder is: on the controller (the launcher, the role's assert)
        elif folder.is_dir() and not (folder / file).is_file():
            findings.append((f"{key}.file", f"{file!r} is not a file of ovms_camera_media_dir ({media_dir})"))
    return findings


# --- everything at once: the role's tasks/validate.yml ----------------------------------------------


def _found(key: str, problem: str | None) -> list[Finding]:
    return [(key, problem)] if problem else []


def stream_findings(
    streams: Any, media_dir: Any = None, variable: str = "ovms_camera_streams"
) -> list[Finding]:
    """Each stream: a name the camera accepts (and no other stream's), a file inside the media folder,
    a frame rate it serves."""
    if streams is None:
        return []
    if not isinstance(streams, list):
        return [(variable, f"must be a list of {{name, file, fps}} (got {streams!r})")]
    findings: list[Finding] = []
    for index, stream in enumerate(streams):
        key = f"{variable}[{index}]"
        if not isinstance(stream, Mapping):
            findings.append((key, f"must be a mapping {{name, file, fps}} (got {stream!r})"))
            continue
        findings += _found(f"{key}.name", name_problem(stream.get("name")))
        if stream.get("file") is not None:
            findings += _found(f"{key}.file", file_problem(stream["file"]))
        if stream.get("fps") is not None:
            findings += _found(f"{key}.fps", fps_problem(stream["fps"]))
    return findings + streams_findings(streams, media_dir, variable)


def credentials_findings(credentials: Any, variable: str = "ovms_camera_credentials") -> list[Finding]:
    """Never shows the password."""
    if credentials is None:
        return []
    if not isinstance(credentials, Mapping):
        return [(variable, "must be {username, password}, or null for no authentication")]
    return _found(f"{variable}.username", username_problem(credentials.get("username"))) + _found(
        f"{variable}.password", password_problem(credentials.get("password"))
    )


def findings(
    streams: Any,
    credentials: Any = None,
    port: Any = CONTAINER_PORT,
    bind_address: Any = "127.0.0.1",
    media_dir: Any = None,
) -> list[Finding]:
    return (
        stream_findings(streams, media_dir)
        + credentials_findings(credentials)
        + _found("ovms_camera_port", port_problem(port))
        + _found("ovms_camera_bind_address", bind_address_problem(bind_address))
    )


def ovms_camera_problems(
    streams: Any,
    credentials: Any = None,
    port: Any = CONTAINER_PORT,
    bind_address: Any = "127.0.0.1",
    media_dir: Any = None,
) -> list[str]:
    """Every problem of the role's values, each "key: message" (empty when none)."""
    found = findings(streams, credentials, port, bind_address, media_dir)
    return [f"{key}: {message}" for key, message in found]


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
            "ovms_camera_problems": ovms_camera_problems,
            "ovms_camera_config": ovms_camera_config,
            "ovms_camera_streams": ovms_camera_streams,
            "ovms_camera_urls": ovms_camera_urls,
            "ovms_camera_status": ovms_camera_status,
        }
