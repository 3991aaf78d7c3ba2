"""Why a network camera cannot be opened, in words: OpenCV only says "not opened".

After a failed open the reader asks the camera itself once: can its address be reached, does it
answer DESCRIBE (RTSP) or GET (HTTP), does it want credentials and does it take the ones given. The
answer goes to the log and to the stats line; it never holds a password (only the user name)."""

from __future__ import annotations

import base64
import hashlib
import os
import re
import socket
import ssl

from .urls import Endpoint, endpoint

_STATUS = re.compile(r"^(RTSP|HTTP)/\d\.\d (\d{3}) ?(.*)$")
_MAX_HEADER = 64 * 1024


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
    """One sentence on why `url` cannot be opened (its target answers, refuses, asks for credentials…)."""
    target = endpoint(url)
    if target is None:
        return "the URL has no host or a bad port"
    where = target.address
    try:
        answer = _ask(target, timeout_s, None)
        if answer.code == 401 and target.username is not None:
            answer = _ask(target, timeout_s, answer)
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
        return f"TLS with {where} failed ({exc.reason or exc})"
    except _NoAnswer as exc:
        return f"{where}: {exc}"
    except OSError as exc:
        return f"cannot reach {where}: {exc.strerror or type(exc).__name__}"
    if answer.code == 404:
        return f"{where} has no stream at {target.path} ({answer.status})"
    if 200 <= answer.code < 300:
        hint = "; with udp the RTP ports must be reachable from the camera" if transport == "udp" else ""
        return f"{where} answers ({answer.status}) but the stream cannot be opened or decoded{hint}"
    return f"{where} answered {answer.status}"


def _ask(target: Endpoint, timeout_s: float, challenge: _Answer | None) -> _Answer:
    """One DESCRIBE (RTSP) or GET (HTTP) on a fresh connection, with credentials when `challenge` (the
    401 that asked for them) is given."""
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
    return _Answer(int(match.group(2)), match.group(3).strip()[:80], headers)


def _authorization(challenge: _Answer, method: str, uri: str, username: str, password: str) -> str:
    schemes = challenge.header("WWW-Authenticate")
    digest = next((s for s in schemes if s.lower().startswith("digest")), None)
    if digest is not None and not any(s.lower().startswith("basic") for s in schemes):
        params = dict(re.findall(r'(\w+)="?([^",]*)"?', digest[len("digest") :]))
        realm, nonce = params.get("realm", ""), params.get("nonce", "")

        def md5(text: str) -> str:
            return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()

        ha1, ha2 = md5(f"{username}:{realm}:{password}"), md5(f"{method}:{uri}")
        fields = f'username="{username}", realm="{realm}", nonce="{nonce}", uri="{uri}"'
        opaque = params.get("opaque")
        if opaque is not None:
            fields += f', opaque="{opaque}"'
        if "auth" in params.get("qop", "").split(","):
            cnonce = os.urandom(8).hex()
            response = md5(f"{ha1}:{nonce}:00000001:{cnonce}:auth:{ha2}")
            fields += f', qop=auth, nc=00000001, cnonce="{cnonce}"'
        else:
            response = md5(f"{ha1}:{nonce}:{ha2}")
        return f'Digest {fields}, response="{response}"'
    token = base64.b64encode(f"{username}:{password}".encode()).decode()
    return f"Basic {token}"
