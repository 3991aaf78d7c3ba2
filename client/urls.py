"""Camera URLs: masking their credentials for anything a person or a file sees, inserting credentials.

A password may hold `@`, `:` and `/`; in a proper URL those are percent-encoded, but a URL typed by
hand may carry them raw, which makes it ambiguous. Masking therefore errs on the side of hiding: when
the URL cannot be split with certainty, everything up to its last `@` is hidden."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote, unquote, urlsplit, urlunsplit

MASK = "***"
DEFAULT_PORTS = {"rtsp": 554, "rtsps": 322, "http": 80, "https": 443}


def redact_url(url: str) -> str:
    """`rtsp://user:password@host/…` -> `rtsp://user:***@host/…`; a user name alone (possibly a
    token) -> `***@host`. Text without `://` is returned as it is (a file path)."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (raises ValueError for a port that is not a number: the split went wrong)
    except ValueError:
        return _mask_to_last_at(scheme, rest)
    userinfo, at, hostport = parts.netloc.rpartition("@")
    if not at or "@" in parts.path + parts.query + parts.fragment:
        # an `@` after the host: a raw `/`, `?` or `#` in the password cut the URL in the wrong place
        return _mask_to_last_at(scheme, rest)
    user, colon, _password = userinfo.partition(":")
    shown = f"{user}:{MASK}" if colon and user else MASK
    return urlunsplit(parts._replace(netloc=f"{shown}@{hostport}"))


def _mask_to_last_at(scheme: str, rest: str) -> str:
    return f"{scheme}://{MASK}@{rest.rpartition('@')[2]}"


def has_userinfo(url: str) -> bool:
    try:
        return "@" in urlsplit(url).netloc
    except ValueError:
        return "@" in url


def with_credentials(url: str, username: str, password: str) -> str:
    """The URL with `username:password@` inserted, both percent-encoded (`@`, `:`, `/` included),
    as FFmpeg reads them. The URL must not have credentials already."""
    parts = urlsplit(url)
    userinfo = f"{quote(username, safe='')}:{quote(password, safe='')}"
    return urlunsplit(parts._replace(netloc=f"{userinfo}@{parts.netloc}"))


@dataclass(frozen=True)
class Endpoint:
    """What a network source dials, read from its URL (credentials decoded, never shown)."""

    scheme: str
    host: str
    port: int
    path: str  # path and query, as sent in a request line
    username: str | None
    password: str | None

    @property
    def address(self) -> str:
        """host:port, IPv6 hosts in brackets."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def request_url(self) -> str:
        """The URL without credentials (RTSP request lines carry the full URL)."""
        return f"{self.scheme}://{self.address}{self.path}"


def endpoint(url: str) -> Endpoint | None:
    """The parts of a network URL, or None when it has no host or a bad port."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if not parts.hostname or scheme not in DEFAULT_PORTS:
        return None
    path = parts.path or "/"
    if parts.query:
        path += f"?{parts.query}"
    username = unquote(parts.username) if parts.username is not None else None
    password = unquote(parts.password) if parts.password is not None else None
    return Endpoint(scheme, parts.hostname, port or DEFAULT_PORTS[scheme], path, username, password)
