"""The proxy's hardening against Debian's nginx on loopback: no TLS session resumption (a revoked
certificate is refused after the reload, even by a client holding a session), AEAD-only TLS 1.2 suites,
no TLS 1.3 session tickets, and the per-address connection and request-rate limits.

The site's http-level directives (TLS settings, request size, limits) come from the role's template,
rendered as the benchmark renders it (bench/inference_setup.py `render_proxy_config`, with some role
defaults changed); the server around them has a `return 200` location and `/held`, proxied to a local
socket that never answers (a request in progress, like a slow inference). `/` answers with
`empty_gif`, a content handler like the role's grpc_pass and proxy_pass: a `return` would answer
before the limits are looked at (its phase runs first). The site's own upstream and server
blocks point at OVMS, so the whole rendered site is only checked with `nginx -t`.
"""

from __future__ import annotations

import re
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from test_pki_handshake import Nginx, nginx_binary

from bench import inference_setup
from launcher.pki import GenerateOptions, KeyType, Kind, PkiLayout, generate, revoke
from launcher.pki.plan import client_spec, server_spec
from testbed.nginx import conf_template

pytestmark = pytest.mark.nginx

ROLE = inference_setup.ROLE_DIR
AEAD_TLS12 = {
    "ECDHE-ECDSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-CHACHA20-POLY1305",
    "ECDHE-RSA-AES128-GCM-SHA256",
    "ECDHE-RSA-AES256-GCM-SHA384",
    "ECDHE-RSA-CHACHA20-POLY1305",
}

SITE_CONF = conf_template(
    """\
{site}
    server {{
        listen 127.0.0.1:{port} ssl;
        location / {{ empty_gif; }}
        location /held {{
            proxy_pass http://127.0.0.1:{held};
            proxy_read_timeout 60s;
        }}
    }}
"""
)

WHOLE_SITE_CONF = conf_template("{site}\n")


def render_site(tmp: Path, **changed: object) -> str:
    """The role's site template, rendered by the benchmark's function from the role defaults with
    `changed` ones (ovms_tls_ names) and 127.0.0.1 as OVMS."""
    role = tmp / "role"
    (role / "defaults").mkdir(parents=True)
    (role / "templates").symlink_to(ROLE / "templates")
    defaults = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
    (role / "defaults" / "main.yml").write_text(yaml.safe_dump({**defaults, **changed}))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(inference_setup, "ROLE_DIR", role)
        text, _ = inference_setup.render_proxy_config("127.0.0.1")
    return text


def http_level(site: str) -> list[str]:
    """The site's directives outside its blocks: they apply to every server of the site."""
    found, depth = [], 0
    for line in site.splitlines():
        code = line.split("#", 1)[0].strip()
        if code and depth == 0 and not code.endswith(("{", "}")):
            found.append(code)
        depth += code.count("{") - code.count("}")
    return found


def install(layout: PkiLayout, tls_dir: Path) -> None:
    """What the role copies to a server (PkiLayout.host_files), into the site's /etc/ovms-tls."""
    tls_dir.mkdir(parents=True, exist_ok=True)
    for name, source in layout.host_files(Kind.SERVER, "localhost").items():
        shutil.copyfile(source, tls_dir / name)


def pki(base: Path, *clients: str, key_type: KeyType | None = None) -> PkiLayout:
    layout = PkiLayout(base)
    specs = [server_spec("localhost", ["127.0.0.1"], []), *(client_spec(c) for c in clients)]
    generate(layout, specs, GenerateOptions(key_type=key_type))
    return layout


def keep(layout: PkiLayout, name: str, where: Path) -> tuple[Path, Path]:
    """A client's certificate and key, kept (revocation removes them from the PKI)."""
    where.mkdir(parents=True)
    return (
        Path(shutil.copy(layout.leaf_cert(Kind.CLIENT, name), where / "cert.pem")),
        Path(shutil.copy(layout.leaf_key(Kind.CLIENT, name), where / "key.pem")),
    )


def logs(nginx: Nginx, since: int, text: str, timeout: float = 10) -> bool:
    """Whether nginx logs `text` after offset `since` (a client can see the outcome before the
    worker has written its log line)."""
    deadline = time.monotonic() + timeout
    while text not in nginx.log_text()[since:]:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


@dataclass
class Site:
    nginx: Nginx
    layout: PkiLayout
    tls_dir: Path


StartSite = Callable[..., Site]


@pytest.fixture
def start_site(tmp_path: Path) -> Iterator[StartSite]:
    """`start_site(layout, held=PORT, **changed_defaults)`: nginx with the rendered site's http-level
    directives, its certificates installed from `layout`."""
    started: list[Nginx] = []

    def start(layout: PkiLayout, held: int = 9, **changed: object) -> Site:
        where = tmp_path / f"site-{len(started)}"
        tls_dir = where / "ovms-tls"
        install(layout, tls_dir)
        site = render_site(where, **changed).replace("/etc/ovms-tls/", f"{tls_dir}/")
        lines = "\n".join(f"    {line}" for line in http_level(site))
        nginx = Nginx(nginx_binary(), where / "nginx", layout.root, SITE_CONF, site=lines, held=str(held))
        started.append(nginx)
        nginx.start()
        return Site(nginx, layout, tls_dir)

    yield start
    for nginx in started:
        nginx.stop()


@pytest.fixture(scope="module")
def layout(tmp_path_factory: pytest.TempPathFactory) -> PkiLayout:
    return pki(tmp_path_factory.mktemp("pki") / "certs", "camera-1")


@dataclass
class Answer:
    statuses: list[int]
    reused: bool | None = None
    session: ssl.SSLSession | None = None
    cipher: str | None = None
    error: Exception | None = None

    @property
    def status(self) -> int | None:
        return self.statuses[0] if self.statuses else None


class Client:
    """One client configuration. A session is resumed only by the SSLContext that made it, so each
    Client keeps its context."""

    def __init__(
        self,
        site: Site,
        cert: Path,
        key: Path,
        *,
        version: ssl.TLSVersion = ssl.TLSVersion.TLSv1_3,
        ciphers: str | None = None,
        tickets: bool = True,
    ) -> None:
        self.site = site
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        self.context.minimum_version = self.context.maximum_version = version
        if ciphers:
            self.context.set_ciphers(ciphers)
        if not tickets:  # resumption by session ID only
            self.context.options |= ssl.OP_NO_TICKET
        self.context.load_verify_locations(cafile=str(site.layout.bundle))
        self.context.load_cert_chain(cert, key)

    def connect(self, session: ssl.SSLSession | None = None, timeout: float = 15) -> ssl.SSLSocket:
        raw = socket.create_connection(("127.0.0.1", self.site.nginx.port), timeout=timeout)
        try:
            return self.context.wrap_socket(raw, server_hostname="localhost", session=session)
        except BaseException:
            raw.close()
            raise

    def send(self, tls: ssl.SSLSocket, path: str = "/", count: int = 1) -> None:
        """`count` requests at once on one connection (HTTP/1.1 pipelining); the last one closes it."""
        requests = [f"GET {path} HTTP/1.1\r\nHost: localhost\r\n" for _ in range(count)]
        requests[-1] += "Connection: close\r\n"
        tls.sendall("".join(f"{r}\r\n" for r in requests).encode())

    def get(
        self, path: str = "/", *, session: ssl.SSLSession | None = None, count: int = 1, timeout: float = 15
    ) -> Answer:
        try:
            with self.connect(session, timeout) as tls:
                self.send(tls, path, count)
                return self.read(tls)
        except (OSError, ssl.SSLError) as exc:  # includes a timeout
            return Answer([], error=exc)

    @staticmethod
    def read(tls: ssl.SSLSocket) -> Answer:
        data = b""
        while chunk := tls.recv(65536):
            data += chunk
        statuses = [int(s) for s in re.findall(rb"HTTP/1\.1 (\d{3}) ", data)]
        cipher = tls.cipher()
        return Answer(statuses, tls.session_reused, tls.session, cipher[0] if cipher else None)


class Held:
    """A loopback upstream that accepts connections and never answers: requests stay in progress."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.accepted: list[socket.socket] = []
        self.arrived = threading.Condition()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:  # closed
                return
            with self.arrived:
                self.accepted.append(conn)
                self.arrived.notify_all()

    def wait_for(self, count: int, timeout: float = 15) -> None:
        with self.arrived:
            assert self.arrived.wait_for(lambda: len(self.accepted) >= count, timeout), (
                f"{len(self.accepted)} of {count} requests reached the upstream"
            )

    def close(self) -> None:
        self.server.close()
        for conn in self.accepted:
            conn.close()


@pytest.fixture
def held() -> Iterator[Held]:
    upstream = Held()
    yield upstream
    upstream.close()


def test_the_whole_rendered_site_passes_nginx_t(layout, tmp_path):
    """Every variant of the site (TLS 1.2, REST server, limits on and off) is valid for nginx 1.22."""
    install(layout, tmp_path / "ovms-tls")
    variants = {
        "defaults": {},
        "tls12-rest": {"ovms_tls_allow_tls12": True, "ovms_tls_rest_port": 9444},
        "no-limits": {"ovms_tls_limit_conn": 0, "ovms_tls_limit_req_rate": 0},
    }
    for name, changed in variants.items():
        site = render_site(tmp_path / name, **changed).replace("/etc/ovms-tls/", f"{tmp_path}/ovms-tls/")
        prefix = tmp_path / name / "nginx"
        (prefix / "tmp").mkdir(parents=True)
        conf = prefix / "nginx.conf"
        conf.write_text(WHOLE_SITE_CONF.format(prefix=prefix, site=site))
        command = [nginx_binary(), "-t", "-p", str(prefix), "-c", str(conf), "-e", str(prefix / "error.log")]
        result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
        assert result.returncode == 0, f"{name}: {result.stderr}"


def test_a_revoked_certificate_cannot_resume_its_tls12_session(start_site, tmp_path):
    """A client resuming a TLS 1.2 session by its ID skips the certificate and CRL checks; with a
    shared session cache (kept across a reload) a revoked certificate got in until the session
    expired. Without resumption its next connection does a full handshake and is refused."""
    layout = pki(tmp_path / "certs", "camera-stolen")
    cert, key = keep(layout, "camera-stolen", tmp_path / "stolen")
    site = start_site(layout, ovms_tls_allow_tls12=True)
    client = Client(site, cert, key, version=ssl.TLSVersion.TLSv1_2, tickets=False)

    first = client.get()
    assert first.error is None and first.status == 200
    assert first.session is not None

    revoke(layout, "camera-stolen", reason="key-compromise")
    install(layout, site.tls_dir)  # the new CRL reaches the server, as a deploy copies it
    site.nginx.reload()
    logged = len(site.nginx.log_text())
    again = client.get(session=first.session)
    assert again.error is None
    assert again.reused is False
    assert again.status == 400
    assert logs(site.nginx, logged, "certificate revoked")


@pytest.mark.parametrize(
    "suite", ["ECDHE-ECDSA-AES128-SHA", "ECDHE-ECDSA-AES256-SHA", "ECDHE-ECDSA-AES128-SHA256"]
)
def test_tls12_cbc_suites_fail_the_handshake(start_site, layout, suite):
    site = start_site(layout, ovms_tls_allow_tls12=True)
    pair = layout.leaf_cert(Kind.CLIENT, "camera-1"), layout.leaf_key(Kind.CLIENT, "camera-1")
    logged = len(site.nginx.log_text())
    answer = Client(site, *pair, version=ssl.TLSVersion.TLSv1_2, ciphers=suite).get()
    assert isinstance(answer.error, ssl.SSLError), answer
    assert "HANDSHAKE_FAILURE" in (answer.error.reason or "")
    assert logs(site.nginx, logged, "no shared cipher")


@pytest.mark.parametrize("key_type", [KeyType.ECDSA_P256, KeyType.RSA_3072])
def test_tls12_negotiates_an_ecdhe_aead_suite_for_each_key_type(start_site, tmp_path, key_type):
    """The PKI issues ECDSA P-256 (default) or RSA 3072 keys: TLS 1.2 works with either, on a
    forward-secret AEAD suite, also when the client prefers a CBC one."""
    layout = pki(tmp_path / "certs", "camera-1", key_type=key_type)
    site = start_site(layout, ovms_tls_allow_tls12=True)
    pair = layout.leaf_cert(Kind.CLIENT, "camera-1"), layout.leaf_key(Kind.CLIENT, "camera-1")
    prefers_cbc = "ECDHE-ECDSA-AES128-SHA:ECDHE-RSA-AES128-SHA:ECDHE+AESGCM:ECDHE+CHACHA20"
    answer = Client(site, *pair, version=ssl.TLSVersion.TLSv1_2, ciphers=prefers_cbc).get()
    assert answer.error is None and answer.status == 200
    assert answer.cipher in AEAD_TLS12


def test_tls13_clients_get_no_session_ticket(start_site, layout):
    site = start_site(layout)
    pair = layout.leaf_cert(Kind.CLIENT, "camera-1"), layout.leaf_key(Kind.CLIENT, "camera-1")
    client = Client(site, *pair)
    first = client.get()
    assert first.error is None and first.status == 200
    assert first.session is None or not first.session.has_ticket
    if first.session is not None:
        assert client.get(session=first.session).reused is False


def test_requests_in_progress_beyond_the_limit_are_refused(start_site, layout, held):
    """Requests in progress are counted per client address: with a limit of 2, two held requests
    leave none for a third connection (429) until one of them ends."""
    site = start_site(layout, held=held.port, ovms_tls_limit_conn=2, ovms_tls_limit_req_rate=0)
    pair = layout.leaf_cert(Kind.CLIENT, "camera-1"), layout.leaf_key(Kind.CLIENT, "camera-1")
    client = Client(site, *pair)
    holding = []
    try:
        for _ in range(2):
            tls = client.connect()
            holding.append(tls)
            client.send(tls, "/held")
        held.wait_for(2)
        assert client.get("/held", timeout=10).status == 429
        assert client.get("/", timeout=10).status == 429
        assert logs(site.nginx, 0, 'limiting connections by zone "ovms_tls_conn"')
    finally:
        for tls in holding:
            tls.close()
    deadline = time.monotonic() + 10  # until nginx has seen the two clients go
    while (status := client.get("/", timeout=10).status) == 429 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert status == 200


@pytest.mark.parametrize(
    ("changed", "refused"),
    [({"ovms_tls_limit_req_rate": 1, "ovms_tls_limit_req_burst": 1}, True), ({}, False)],
    ids=["rate-1-burst-1", "defaults"],
)
def test_requests_beyond_the_rate_are_refused(start_site, layout, changed, refused):
    """Eight requests at once on one connection: a rate of 1/s with a burst of 1 passes two of them
    and answers the rest 429; the defaults pass all."""
    site = start_site(layout, ovms_tls_limit_conn=0, **changed)
    pair = layout.leaf_cert(Kind.CLIENT, "camera-1"), layout.leaf_key(Kind.CLIENT, "camera-1")
    answer = Client(site, *pair).get(count=8)
    assert answer.error is None and len(answer.statuses) == 8
    if refused:
        assert answer.statuses[:2] == [200, 200]
        assert set(answer.statuses[2:]) == {429}
    else:
        assert answer.statuses == [200] * 8
