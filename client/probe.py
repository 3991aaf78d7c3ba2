"""Why a network camera cannot be opened, in words: OpenCV only says "not opened".

After a failed open the reader asks the camera itself once: can its address be reached, does it
answer DESCRIBE (RTSP) or GET (HTTP), does it want credentials and does it take the ones given. The
answer goes to the log and to the stats line; it never holds a password (only the user name), nor
the values of secret-looking URL parameters, nor a control character the camera sent.

Credentials are sent only as FFmpeg would send them, never more: only in answer to a 401, Digest
whenever the camera offers it (MD5 or MD5-sess, qop auth or none: what FFmpeg answers), Basic (the
password readable by anyone on the path of a plain rtsp:// or http:// connection) only when Basic is
the only scheme the camera offers, and nothing at all for any other scheme."""

from __future__ import annotations

import base64
import hashlib
import os
import re
import socket
import ssl

from .urls import Endpoint, endpoint, redact_path, redact_text

_STATUS = re.compile(r"^(RTSP|HTTP)/\d\.\d (\d{3}) ?(.*)$")
_MAX_HEADER = 64 * 1024
_MAX_REASON = 80
_TOKEN = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_PARAM = re.compile(rf"({_TOKEN})\s*=\s*(.*)$", re.S)
_CHALLENGE = re.compile(rf"({_TOKEN})(?:\s+(.*))?$", re.S)
_DIGEST_ALGORITHMS = ("md5", "md5-sess")


def printable(text: str, limit: int | None = None) -> str:
    """`text` without the characters a terminal or a log reader would act on (ESC, CR, other
    controls): what a camera sends is shown only through this."""
    kept = "".join(c for c in text if c.isprintable()).strip()
    return kept if limit is None else kept[:limit]


class _Answer:
    def __init__(self, code: int, reason: str, headers: list[tuple[str, str]]) -> None:
        self.code = code
        self.reason = reason
        self.headers = headers

    def header(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k.lower() == name.lower()]

    @property
    def status(self) -> str:
        return f"{self.code} {self.reason}".strip()


class _NoAnswer(Exception):
    pass


def diagnose(url: str, timeout_s: float, transport: str | None = None) -> str:
    """One sentence on why `url` cannot be opened (its target answers, refuses, asks for credentials…).
    Never raises: a failure of the probe itself is described too."""
    target = endpoint(url)
    if target is None:
        return "the URL has no host or a bad port"
    try:
        return printable(_diagnose(target, timeout_s, transport))
    except UnicodeError:
        # the host name cannot be encoded for DNS (`cam..store.local`: an empty label)
        return printable(
            redact_text(f"cannot reach {target.address}: the host name is not valid (UnicodeError)")
        )
    except Exception as exc:  # the probe only explains; it must never take the reader down
        return printable(redact_text(f"cannot reach {target.address}: {type(exc).__name__}"))


def _diagnose(target: Endpoint, timeout_s: float, transport: str | None) -> str:
    where = target.address
    try:
        answer = _ask(target, timeout_s, None)
        if answer.code == 401 and target.username is not None:
            challenge = _challenge_to_answer(answer)
            if challenge is None:
                return (
                    f"{where} asks for credentials ({_offered(answer)}; {answer.status}); the client "
                    "answers Digest, or Basic when it is the only scheme offered"
                )
            answer = _ask(target, timeout_s, challenge)
            if answer.code == 401:
                return f"{where} refused the credentials of user {target.username!r} ({answer.status})"
        elif answer.code == 401:
            return (
                f"{where} asks for credentials ({answer.status}); give them in OVMS_CAMERA_CREDENTIALS "
                "(or in the URL)"
            )
    except socket.gaierror:
        return f"unknown host {target.host}"
    except ConnectionRefusedError:
        return f"connection refused by {where} (nothing listens there)"
    except TimeoutError:
        return f"{where} did not answer within {timeout_s:g} s"
    except ssl.SSLError as exc:
        return f"TLS with {where} failed ({exc.reason or type(exc).__name__})"
    except _NoAnswer as exc:
        return f"{where}: {exc}"
    except OSError as exc:
        return f"cannot reach {where}: {exc.strerror or type(exc).__name__}"
    if answer.code == 404:
        return f"{where} has no stream at {redact_path(target.path)} ({answer.status})"
    if 200 <= answer.code < 300:
        hint = "; with udp the RTP ports must be reachable from the camera" if transport == "udp" else ""
        return f"{where} answers ({answer.status}) but the stream cannot be opened or decoded{hint}"
    return f"{where} answered {answer.status}"


# --- the 401's challenges ------------------------------------------------------------------------


class _Challenge:
    def __init__(self, scheme: str, params: dict[str, str]) -> None:
        self.scheme = scheme  # as the camera wrote it
        self.params = params  # names lower-cased, values unquoted

    @property
    def kind(self) -> str:
        return self.scheme.lower()

    @property
    def digest_supported(self) -> bool:
        algorithm = self.params.get("algorithm", "md5").lower()
        qop = [q.strip().lower() for q in self.params.get("qop", "").split(",") if q.strip()]
        return algorithm in _DIGEST_ALGORITHMS and (not qop or "auth" in qop)

    def shown(self) -> str:
        name = printable(self.scheme, 20)
        algorithm = self.params.get("algorithm")
        if self.kind == "digest" and algorithm is not None:
            name += f" algorithm={printable(algorithm, 20)}"
        return name


def _challenges(answer: _Answer) -> list[_Challenge]:
    """The challenges of every WWW-Authenticate header (one header may hold several, comma-separated:
    `Digest realm="x", nonce="y", Basic realm="x"`)."""
    found: list[_Challenge] = []
    for value in answer.header("WWW-Authenticate"):
        for item in _split_commas(value):
            item = item.strip()
            param = _PARAM.match(item)
            if param and found:
                found[-1].params[param.group(1).lower()] = _unquote(param.group(2))
                continue
            start = _CHALLENGE.match(item)
            if not start:
                continue
            params: dict[str, str] = {}
            first = _PARAM.match(start.group(2) or "")
            if first:
                params[first.group(1).lower()] = _unquote(first.group(2))
            found.append(_Challenge(start.group(1), params))
    return found


def _split_commas(value: str) -> list[str]:
    items, current, quoted, escaped = [], "", False, False
    for char in value:
        if escaped:
            escaped = False
        elif quoted and char == "\\":
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == "," and not quoted:
            items.append(current)
            current = ""
            continue
        current += char
    items.append(current)
    return items


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return re.sub(r"\\(.)", r"\1", value[1:-1])
    return value


def _challenge_to_answer(answer: _Answer) -> _Challenge | None:
    """The challenge FFmpeg would answer: Digest whenever offered (the first one it supports; a Digest
    it does not support is not answered, not even with Basic), Basic only as the only scheme."""
    challenges = _challenges(answer)
    digests = [c for c in challenges if c.kind == "digest"]
    if digests:
        return next((c for c in digests if c.digest_supported), None)
    if challenges and all(c.kind == "basic" for c in challenges):
        return challenges[0]
    return None


def _offered(answer: _Answer) -> str:
    challenges = _challenges(answer)
    if not challenges:
        return "no scheme named"
    names = list(dict.fromkeys(c.shown() for c in challenges))
    more = len(names) - 4
    return "scheme " + ", ".join(names[:4]) + (f" and {more} more" if more > 0 else "")


# --- one request -----------------------------------------------------------------------------------


def _ask(target: Endpoint, timeout_s: float, challenge: _Challenge | None) -> _Answer:
    """One DESCRIBE (RTSP) or GET (HTTP) on a fresh connection, with credentials answering
    `challenge` (one of the 401 that asked for them) when it is given."""
    rtsp = target.scheme.startswith("rtsp")
    method = "DESCRIBE" if rtsp else "GET"
    uri = target.request_url if rtsp else target.path
    lines = [f"{method} {uri} {'RTSP/1.0' if rtsp else 'HTTP/1.1'}"]
    if rtsp:
        lines += ["CSeq: 1", "Accept: application/sdp"]
    else:
        lines += [f"Host: {target.address}", "Connection: close"]
    lines.append("User-Agent: ovms-client-probe")
    if challenge is not None:
        authorization = _authorization(challenge, method, uri, target.username or "", target.password or "")
        lines.append(f"Authorization: {authorization}")
    request = ("\r\n".join(lines) + "\r\n\r\n").encode()
    with socket.create_connection((target.host, target.port), timeout=timeout_s) as raw:
        conn: socket.socket = raw
        if target.scheme in ("rtsps", "https"):
            # like FFmpeg, which does not verify a camera's certificate unless told to
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            conn = context.wrap_socket(raw, server_hostname=target.host)
        conn.sendall(request)
        return _read_answer(conn)


def _read_answer(conn: socket.socket) -> _Answer:
    data = b""
    while b"\r\n\r\n" not in data and len(data) < _MAX_HEADER:
        chunk = conn.recv(4096)
        if not chunk:
            break
        data += chunk
    if not data:
        raise _NoAnswer("the connection was closed without an answer")
    head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1")
    status, *rest = head.split("\r\n")
    match = _STATUS.match(status.strip())
    if not match:
        raise _NoAnswer("the answer is not RTSP or HTTP")
    headers = []
    for line in rest:
        name, sep, value = line.partition(":")
        if sep:
            headers.append((name.strip(), value.strip()))
    return _Answer(int(match.group(2)), printable(match.group(3), _MAX_REASON), headers)


def _authorization(challenge: _Challenge, method: str, uri: str, username: str, password: str) -> str:
    """The Authorization header answering `challenge` (Basic, or Digest MD5/MD5-sess)."""
    if challenge.kind == "basic":
        token = base64.b64encode(f"{username}:{password}".encode()).decode()
        return f"Basic {token}"
    params = challenge.params
    realm, nonce = params.get("realm", ""), params.get("nonce", "")
    algorithm = params.get("algorithm")
    qop = [q.strip().lower() for q in params.get("qop", "").split(",") if q.strip()]

    def md5(text: str) -> str:
        return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()

    cnonce = os.urandom(8).hex()
    ha1 = md5(f"{username}:{realm}:{password}")
    if algorithm is not None and algorithm.lower() == "md5-sess":
        ha1 = md5(f"{ha1}:{nonce}:{cnonce}")
    ha2 = md5(f"{method}:{uri}")
    fields = [("username", username), ("realm", realm), ("nonce", nonce), ("uri", uri)]
    if "auth" in qop:
        response = md5(f"{ha1}:{nonce}:00000001:{cnonce}:auth:{ha2}")
    else:
        response = md5(f"{ha1}:{nonce}:{ha2}")
    fields.append(("response", response))
    if algorithm is not None:
        fields.append(("algorithm", algorithm))
    if "opaque" in params:
        fields.append(("opaque", params["opaque"]))
    text = ", ".join(f'{name}="{_quoted(value)}"' for name, value in fields)
    if "auth" in qop:
        text += f', qop=auth, nc=00000001, cnonce="{cnonce}"'
    elif algorithm is not None and algorithm.lower() == "md5-sess":
        text += f', cnonce="{cnonce}"'
    return f"Digest {text}"


def _quoted(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')
