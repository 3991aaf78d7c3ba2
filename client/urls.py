"""Camera URLs: masking their credentials for anything a person or a file sees, inserting credentials.

A password may hold `@`, `:` and `/`; in a proper URL those are percent-encoded, but a URL typed by
hand may carry them raw, which makes it ambiguous. Masking therefore errs on the side of hiding: when
the URL cannot be split with certainty, everything up to its last `@` is hidden; a URL cut inside its
user info (`rtsp://user:pa`, e.g. by a comma in the password) hides everything after `user:`; the
values of query (and path) parameters that usually carry secrets (`?user=…&pwd=…`, `?token=…`) are
hidden too. `redact` applies this to any one value a person sees (a URL in any case, a path that
holds `user:password@`), `redact_text` to every word of a message."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import quote, unquote, urlsplit, urlunsplit

MASK = "***"
DEFAULT_PORTS = {"rtsp": 554, "rtsps": 322, "http": 80, "https": 443}
# Parameters whose value is hidden wherever a URL is shown (compared case-insensitively).
SECRET_PARAMETERS = (
    "user",
    "username",
    "pwd",
    "passwd",
    "password",
    "pass",
    "token",
    "access_token",
    "key",
    "api_key",
    "apikey",
    "auth",
    "sig",
    "signature",
    "secret",
)
_NAMES = "|".join(sorted(SECRET_PARAMETERS, key=len, reverse=True))
# in the query a value ends at `&`, `;` or `#`; in the path (`/user=admin_password=x_channel=1`, as
# some cameras take it) also at `/` and `?`
_QUERY_SECRET = re.compile(rf"(?i)(?<![A-Za-z0-9])({_NAMES})=([^&;#]+)")
_PATH_SECRET = re.compile(rf"(?i)(?<![A-Za-z0-9])({_NAMES})=([^&;#/?]+)")
_SCHEME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+.-")


def redact_url(url: str) -> str:
    """`rtsp://user:password@host/…` -> `rtsp://user:***@host/…`; a user name alone (possibly a
    token) -> `***@host`; `…?token=abc` -> `…?token=***`. Text without `://` is returned as it is (a
    file path: see `redact`)."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    if "@" not in rest:
        authority = re.split(r"[/?#]", rest, maxsplit=1)[0]
        if ":" in authority and not _valid_authority(url):
            # `host:port` whose port is not a number: a URL cut inside its user info
            # (`rtsp://admin:Pa` of `rtsp://admin:Pa,ss@cam`): hide all after the user name
            return f"{scheme}://{authority.partition(':')[0]}:{MASK}"
        return f"{scheme}://{redact_path(rest)}"
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
    tail = (
        parts.path
        + (f"?{parts.query}" if parts.query else "")
        + (f"#{parts.fragment}" if parts.fragment else "")
    )
    return f"{parts.scheme}://{shown}@{hostport}{redact_path(tail)}"


def _valid_authority(url: str) -> bool:
    try:
        urlsplit(url).port  # noqa: B018
    except ValueError:
        return False
    return True


def _mask_to_last_at(scheme: str, rest: str) -> str:
    return f"{scheme}://{MASK}@{redact_path(rest.rpartition('@')[2])}"


def redact_path(text: str) -> str:
    """The values of secret-looking parameters hidden: `/live?user=op&pwd=x` -> `/live?user=***&pwd=***`."""
    path, question, query = text.partition("?")
    path = _PATH_SECRET.sub(rf"\1={MASK}", path)
    return path + question + _QUERY_SECRET.sub(rf"\1={MASK}", query) if question else path


def redact(value: str) -> str:
    """One value a person sees (an input's URL or path, a value in an error): a URL masked as by
    `redact_url` whatever its scheme (text before it is kept); text without `://` that holds
    `user:password@` loses everything from the user name to its last `@`."""
    index = value.find("://")
    if index >= 0:
        start = index
        while start > 0 and value[start - 1] in _SCHEME_CHARS:
            start -= 1
        return value[:start] + redact_url(value[start:])
    at = value.rfind("@")
    colon = value.find(":")
    if at < 0 or colon < 0 or colon > at:
        return value
    start = max(value.rfind("/", 0, colon), *(value.rfind(c, 0, colon) for c in " \t'\"(=,")) + 1
    return f"{value[:start]}{MASK}{value[at:]}"


def redact_text(text: str) -> str:
    """Every word of a message (an exception's, a log line) through `redact`: a best effort for text
    that did not come from the client (a password with spaces in a URL that is not one value cannot
    be told from the words around it)."""
    return re.sub(r"\S+", lambda match: redact(match.group()), text)


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
