"""Camera credentials from the file OVMS_CAMERA_CREDENTIALS names, kept out of profiles.

    {"cameras": [{"match": "rtsp://camera-1:8554/aisle3" | "camera-1:8554" | "camera-1",
                  "username": "...", "password": "..."}]}

An rtsp/http input whose URL has no credentials of its own gets those of the most specific matching
entry: a URL prefix (that stream and the paths below it; the longest wins), then host:port, then
host. They are inserted percent-encoded into the URL that only OpenCV sees; whatever a person or a
file sees carries the masked URL (client/urls.py). No message here ever shows a password."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .errors import ClientError
from .urls import endpoint, has_userinfo, with_credentials

VARIABLE = "OVMS_CAMERA_CREDENTIALS"
_FIX = (
    'expected {"cameras": [{"match": URL, host:port or host, "username": ..., "password": ...}]}; '
    "the deployment writes this file from ovms_client_camera_credentials"
)


@dataclass(frozen=True)
class CameraCredential:
    match: str
    username: str
    password: str = field(repr=False)
    # the parsed match: (scheme, host, port, path) for a URL prefix, (None, host, port, None) for
    # host:port, (None, host, None, None) for a host
    scheme: str | None = field(default=None, repr=False)
    host: str = field(default="", repr=False)
    port: int | None = field(default=None, repr=False)
    path: str | None = field(default=None, repr=False)

    def rank(self, scheme: str, host: str, port: int, path: str) -> tuple[int, int] | None:
        """How specifically this entry matches a URL's parts (higher wins), None when it does not."""
        if host != self.host:
            return None
        if self.scheme is not None:
            assert self.path is not None
            prefix = self.path.rstrip("/")
            below = path == prefix or path.startswith(prefix + "/") or not prefix
            if scheme == self.scheme and port == self.port and below:
                return (3, len(prefix))
            return None
        if self.port is not None:
            return (2, 0) if port == self.port else None
        return (1, 0)


class CameraCredentials:
    def __init__(self, entries: list[CameraCredential], file: Path) -> None:
        self.entries = entries
        self.file = file

    def find(self, url: str) -> CameraCredential | None:
        """The most specific entry for `url`; None when none matches or the URL has credentials."""
        if has_userinfo(url):
            return None
        target = endpoint(url)
        if target is None:
            return None
        host, path = target.host.lower(), target.path.split("?", 1)[0]
        ranked = [
            (rank, entry)
            for entry in self.entries
            if (rank := entry.rank(target.scheme, host, target.port, path)) is not None
        ]
        return max(ranked, key=lambda item: item[0])[1] if ranked else None

    def apply(self, url: str) -> tuple[str, CameraCredential | None]:
        """`url` with the credentials of its entry inserted (percent-encoded), and that entry."""
        entry = self.find(url)
        if entry is None:
            return url, None
        return with_credentials(url, entry.username, entry.password), entry


def load_camera_credentials(path: Path) -> CameraCredentials:
    """Read and check the credentials file; errors name the file and the entry, never a value."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ClientError(
            "the camera credentials file does not exist",
            file=path,
            key=VARIABLE,
            fix=f"mount the file the deployment writes, or unset {VARIABLE}",
        ) from exc
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        raise ClientError(
            f"cannot read the camera credentials file: {reason}",
            file=path,
            key=VARIABLE,
            fix="the file must be readable by the client's group (0640, root:<client group>)",
        ) from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        # the decoder's message names a position only, never the text around it
        raise ClientError(
            f"not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})", file=path, fix=_FIX
        ) from None
    cameras = data.get("cameras") if isinstance(data, dict) else None
    if not isinstance(data, dict) or set(data) - {"cameras"} or not isinstance(cameras, list):
        raise ClientError("expected a mapping with the single key 'cameras' (a list)", file=path, fix=_FIX)
    return CameraCredentials([_entry(item, i, path) for i, item in enumerate(cameras)], path)


def _entry(item: Any, index: int, path: Path) -> CameraCredential:
    key = f"cameras[{index}]"
    if not isinstance(item, dict):
        raise ClientError("expected a mapping with match, username and password", file=path, key=key)
    unknown = sorted(str(k) for k in set(item) - {"match", "username", "password"})
    if unknown:
        raise ClientError(
            f"unknown key(s) {', '.join(unknown)}; expected match, username and password", file=path, key=key
        )
    for name in ("match", "username", "password"):
        value = item.get(name)
        if not isinstance(value, str) or not value or any(c in value for c in "\r\n\0"):
            raise ClientError("expected a non-empty string of one line", file=path, key=f"{key}.{name}")
    match = item["match"].strip()
    parsed = _parse_match(match)
    if parsed is None:
        # a match is not secret (a URL without credentials, a host:port or a host), but one holding
        # `@` might be a URL with a password pasted in: never echo it
        shown = "" if "@" in match else f" {match!r}"
        raise ClientError(
            f"the match{shown} is not an rtsp://, rtsps://, http:// or https:// URL without "
            "credentials, a host:port or a host",
            file=path,
            key=f"{key}.match",
        )
    scheme, host, port, prefix = parsed
    return CameraCredential(match, item["username"], item["password"], scheme, host, port, prefix)


def _parse_match(match: str) -> tuple[str | None, str, int | None, str | None] | None:
    if not match or "@" in match or any(c.isspace() for c in match):
        return None
    if "://" in match:
        target = endpoint(match)
        if target is None:
            return None
        return target.scheme, target.host.lower(), target.port, target.path.split("?", 1)[0]
    try:
        # "host", "host:port", "[v6]", "[v6]:port": read as the authority of a URL
        parts = urlsplit(f"//{match}")
        port = parts.port
    except ValueError:
        return None
    if not parts.hostname or parts.hostname.startswith("-") or parts.path or parts.query or parts.fragment:
        return None
    if ":" in parts.hostname and not match.startswith("["):
        return None  # an IPv6 address needs brackets (else its last group reads as a port)
    return None, parts.hostname.lower(), port, None
