"""Real mTLS handshakes: Debian's nginx, started by the test on loopback, with `ssl_verify_client on`
and the CA bundle, server certificate and CRL that `launcher certs` generated.

nginx completes the TLS handshake even when the client certificate is bad and answers the first
request with HTTP 400, logging why; so each case sends a request and asserts the status, the body
and the reason in nginx's error log. A protocol below the allowed ones fails in the handshake.
"""

from __future__ import annotations

import os
import shutil
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from launcher.pki import Kind, LeafSpec, PkiLayout, generate, revoke
from launcher.pki import rotate as rotation
from launcher.pki.authority import cert_pem
from launcher.pki.keys import KeyType, generate_key, private_key_pem
from launcher.pki.names import typed_san
from launcher.pki.plan import client_spec, server_spec
from launcher.pki.store import load_state
from testbed.nginx import conf_template

pytestmark = pytest.mark.nginx

NGINX_CONF = conf_template(
    access_log="{prefix}/access.log",
    http="""\
    server {{
        listen 127.0.0.1:{port} ssl;
        ssl_certificate {pki}/servers/localhost/server.pem;
        ssl_certificate_key {pki}/servers/localhost/server.key;
        ssl_client_certificate {pki}/ca-bundle.pem;
        ssl_crl {pki}/crl.pem;
        ssl_verify_client on;
        ssl_verify_depth 1;
        ssl_protocols TLSv1.2 TLSv1.3;
        location / {{ return 200 "hello $ssl_client_s_dn\\n"; }}
    }}
""",
)


def nginx_binary() -> str:
    found = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    if found:
        return found
    if os.environ.get("CI") == "true":
        pytest.fail("nginx is required in CI (apt-get install nginx-light or nginx)")
    pytest.skip("nginx binary not installed")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Nginx:
    """nginx on a free loopback port. `conf` is formatted with prefix, port, pki and `fields`."""

    def __init__(self, binary: str, prefix: Path, pki: Path, conf: str = NGINX_CONF, **fields: str) -> None:
        self.binary, self.prefix, self.pki = binary, prefix, pki
        self.template, self.fields = conf, fields
        self.port = 0
        self.process: subprocess.Popen | None = None
        (prefix / "tmp").mkdir(parents=True, exist_ok=True)
        self.conf = prefix / "nginx.conf"
        self.log = prefix / "error.log"

    def start(self) -> None:
        """Start on a free loopback port; another attempt only if that port was taken meanwhile."""
        for _ in range(3):
            if self._start_once():
                return
        pytest.fail(f"nginx could not bind a free port\n{self.log_text()}")

    def _start_once(self) -> bool:
        self.port = free_port()
        self.conf.write_text(
            self.template.format(prefix=self.prefix, port=self.port, pki=self.pki, **self.fields)
        )
        self.process = subprocess.Popen(
            self.command(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                err = self.process.stderr.read().decode() if self.process.stderr else ""
                self.stop()
                if "Address already in use" in err:
                    return False
                pytest.fail(f"nginx exited: {err}\n{self.log_text()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return True
            except OSError:
                time.sleep(0.05)
        self.stop()
        pytest.fail(f"nginx did not listen on 127.0.0.1:{self.port}\n{self.log_text()}")

    def command(self, *args: str) -> list[str]:
        return [self.binary, "-p", str(self.prefix), "-c", str(self.conf), "-e", str(self.log), *args]

    def reload(self) -> None:
        """`nginx -s reload` (certificates and CRL are read again); returns once the old worker exited,
        so the next connection meets the new configuration."""
        logged = len(self.log_text())
        subprocess.run(self.command("-s", "reload"), check=True, capture_output=True, timeout=30)
        deadline = time.monotonic() + 20
        while "exited with code" not in self.log_text()[logged:]:
            if time.monotonic() > deadline:
                pytest.fail(f"nginx did not finish its reload\n{self.log_text()[logged:]}")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process is not None and self.process.stderr:
            self.process.stderr.close()
        self.process = None

    def log_text(self) -> str:
        return self.log.read_text() if self.log.exists() else ""


@dataclass
class Reply:
    status: int | None
    body: str
    tls_error: ssl.SSLError | None = None


def request(
    nginx: Nginx,
    cert: Path | None = None,
    key: Path | None = None,
    *,
    server_name: str = "localhost",
    version: ssl.TLSVersion = ssl.TLSVersion.TLSv1_3,
    seclevel0: bool = False,
) -> Reply:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if seclevel0:  # let this client offer old protocols at all, so the refusal is the server's
        ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    ctx.minimum_version = ctx.maximum_version = version
    ctx.load_verify_locations(cafile=str(nginx.pki / "ca-bundle.pem"))
    if cert is not None:
        ctx.load_cert_chain(cert, key)
    try:
        with (
            socket.create_connection(("127.0.0.1", nginx.port), timeout=15) as raw,
            ctx.wrap_socket(raw, server_hostname=server_name) as tls,
        ):
            tls.sendall(f"GET / HTTP/1.1\r\nHost: {server_name}\r\nConnection: close\r\n\r\n".encode())
            data = b""
            while chunk := tls.recv(4096):
                data += chunk
    except ssl.SSLError as exc:
        return Reply(None, "", exc)
    head, _, body = data.decode(errors="replace").partition("\r\n\r\n")
    return Reply(int(head.split()[1]), body)


@dataclass
class Material:
    layout: PkiLayout
    client: tuple[Path, Path]
    revoked: tuple[Path, Path]
    expired: tuple[Path, Path]
    other_ca: tuple[Path, Path]
    server_as_client: tuple[Path, Path]


def keep(layout: PkiLayout, kind: Kind, name: str, where: Path) -> tuple[Path, Path]:
    where.mkdir(parents=True)
    return (
        Path(shutil.copy(layout.leaf_cert(kind, name), where / "cert.pem")),
        Path(shutil.copy(layout.leaf_key(kind, name), where / "key.pem")),
    )


def issue_expired(layout: PkiLayout, name: str, where: Path) -> tuple[Path, Path]:
    """A client certificate of the right CA whose validity ended yesterday."""
    authority = load_state(layout).current
    assert authority is not None
    now = datetime.now(UTC)
    key = generate_key(KeyType.ECDSA_P256)
    spec = LeafSpec(Kind.CLIENT, name, (typed_san(name),))
    cert = authority.issue(
        spec,
        key.public_key(),
        now=now,
        days=1,
        not_before=now - timedelta(days=30),
        not_after=now - timedelta(days=1),
    )
    where.mkdir(parents=True)
    (where / "cert.pem").write_bytes(cert_pem(cert))
    (where / "key.pem").write_bytes(private_key_pem(key))
    (where / "key.pem").chmod(0o600)
    return where / "cert.pem", where / "key.pem"


@pytest.fixture(scope="module")
def material(tmp_path_factory: pytest.TempPathFactory) -> Material:
    base = tmp_path_factory.mktemp("pki")
    layout = PkiLayout(base / "certs")
    specs = [
        server_spec("localhost", ["127.0.0.1"], []),
        client_spec("camera-good"),
        client_spec("camera-stolen"),
    ]
    generate(layout, specs)
    stolen = keep(layout, Kind.CLIENT, "camera-stolen", base / "stolen")
    revoke(layout, "camera-stolen", reason="key-compromise")
    other = PkiLayout(base / "other-ca")
    generate(other, [client_spec("camera-good")])
    return Material(
        layout=layout,
        client=(layout.leaf_cert(Kind.CLIENT, "camera-good"), layout.leaf_key(Kind.CLIENT, "camera-good")),
        revoked=stolen,
        expired=issue_expired(layout, "camera-old", base / "expired"),
        other_ca=(other.leaf_cert(Kind.CLIENT, "camera-good"), other.leaf_key(Kind.CLIENT, "camera-good")),
        server_as_client=keep(layout, Kind.SERVER, "localhost", base / "server-as-client"),
    )


@pytest.fixture(scope="module")
def nginx(material: Material, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Nginx]:
    server = Nginx(nginx_binary(), tmp_path_factory.mktemp("nginx"), material.layout.root)
    server.start()
    yield server
    server.stop()


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_3, ssl.TLSVersion.TLSv1_2])
@pytest.mark.parametrize("server_name", ["localhost", "127.0.0.1"])
def test_valid_client_certificate_is_accepted(nginx, material, version, server_name):
    # The client verifies the server certificate against the bundle, by DNS name and by IP SAN.
    reply = request(nginx, *material.client, server_name=server_name, version=version)
    assert reply.tls_error is None
    assert reply.status == 200
    assert "CN=camera-good" in reply.body


@pytest.mark.parametrize(
    ("case", "body", "log_reason"),
    [
        ("none", "No required SSL certificate was sent", "client sent no required SSL certificate"),
        ("other_ca", "The SSL certificate error", "unable to verify the first certificate"),
        ("expired", "The SSL certificate error", "certificate has expired"),
        ("revoked", "The SSL certificate error", "certificate revoked"),
        ("server_as_client", "The SSL certificate error", "unsuitable certificate purpose"),
    ],
)
def test_bad_client_certificate_is_refused(nginx, material, case, body, log_reason):
    logged = len(nginx.log_text())
    pair = getattr(material, case) if case != "none" else (None, None)
    reply = request(nginx, *pair)
    # Observed nginx behaviour: TLS completes, the request is answered 400 and the reason is logged.
    assert reply.tls_error is None
    assert reply.status == 400
    assert body in reply.body
    assert "CN=" not in reply.body
    assert log_reason in nginx.log_text()[logged:]


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1_1 is deprecated:DeprecationWarning")
def test_tls_1_1_is_refused_by_the_server(nginx, material):
    reply = request(nginx, *material.client, version=ssl.TLSVersion.TLSv1_1, seclevel0=True)
    assert reply.status is None and reply.tls_error is not None
    # The server's protocol_version alert, not a local "no protocols available".
    assert "ALERT_PROTOCOL_VERSION" in (reply.tls_error.reason or "") or "protocol version" in str(
        reply.tls_error
    )


def test_tls_1_1_is_refused_with_openssl_s_client(nginx, material):
    cert, key = material.client
    command = ["openssl", "s_client", "-connect", f"127.0.0.1:{nginx.port}", "-tls1_1"]
    command += ["-cipher", "DEFAULT@SECLEVEL=0", "-cert", str(cert), "-key", str(key)]
    command += ["-CAfile", str(nginx.pki / "ca-bundle.pem")]
    result = subprocess.run(
        command,
        input=b"",
        capture_output=True,
        timeout=30,
        check=False,
    )
    output = (result.stdout + result.stderr).decode(errors="replace")
    assert result.returncode != 0
    assert "alert protocol version" in output


def test_rotation_overlap_with_nginx(tmp_path):
    """Clients of the old and the new CA both get in during the overlap; afterwards only the new."""
    layout = PkiLayout(tmp_path / "certs")
    specs = [server_spec("localhost", ["127.0.0.1"], []), client_spec("cam-old")]
    generate(layout, specs)
    old = keep(layout, Kind.CLIENT, "cam-old", tmp_path / "old")
    rotation.start(layout)
    generate(layout, [*specs, client_spec("cam-new")])
    new = (layout.leaf_cert(Kind.CLIENT, "cam-new"), layout.leaf_key(Kind.CLIENT, "cam-new"))
    rotation.reissue(layout)

    server = Nginx(nginx_binary(), tmp_path / "nginx", layout.root)
    server.start()
    try:
        for pair, cn in ((old, "cam-old"), (new, "cam-new")):
            reply = request(server, *pair)
            assert reply.status == 200 and f"CN={cn}" in reply.body
    finally:
        server.stop()

    rotation.finish(layout)
    server.start()
    try:
        logged = len(server.log_text())
        refused = request(server, *old)
        assert refused.status == 400
        assert "unable to verify the first certificate" in server.log_text()[logged:]
        reply = request(server, *new)
        assert reply.status == 200 and "CN=cam-new" in reply.body
    finally:
        server.stop()
