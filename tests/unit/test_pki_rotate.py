"""`certs rotate`: a new CA with an overlap bundle, so hosts roll over without an outage.

"Accepted by a server" is checked two ways: `openssl verify` against the bundle and CRLs, and a real
TLS 1.3 handshake on loopback with Python's ssl module, the server requiring a client certificate
and checking the CRLs of the whole chain like nginx does.
"""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography import x509

from launcher.cli import main
from launcher.errors import LauncherError
from launcher.pki import Kind, PkiLayout, check, generate, revoke
from launcher.pki import rotate as rotation
from launcher.pki.plan import client_spec, server_spec

SPECS = [server_spec("srv", ["127.0.0.1"], []), client_spec("cam-old")]
WITH_NEW = [*SPECS, client_spec("cam-new")]


def handshake(layout: PkiLayout, client_cert: Path, client_key: Path) -> tuple[bool, str]:
    """(accepted, server-side error) for one connection of this client to the `srv` server."""
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    server_ctx.load_cert_chain(layout.leaf_cert(Kind.SERVER, "srv"), layout.leaf_key(Kind.SERVER, "srv"))
    server_ctx.verify_mode = ssl.CERT_REQUIRED
    server_ctx.load_verify_locations(cafile=str(layout.bundle))
    server_ctx.load_verify_locations(cafile=str(layout.crl))
    server_ctx.verify_flags |= ssl.VERIFY_CRL_CHECK_CHAIN
    client_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client_ctx.load_verify_locations(cafile=str(layout.bundle))
    client_ctx.load_cert_chain(client_cert, client_key)

    server_error: list[str] = []
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(30)

        def serve() -> None:
            conn, _ = listener.accept()
            conn.settimeout(30)
            try:
                with server_ctx.wrap_socket(conn, server_side=True) as tls:
                    if tls.recv(5) == b"hello":
                        tls.sendall(b"ACCEPTED")
            except (ssl.SSLError, OSError) as exc:
                server_error.append(str(exc))

        thread = threading.Thread(target=serve)
        thread.start()
        reply = b""
        try:
            with (
                socket.create_connection(listener.getsockname(), timeout=30) as raw,
                client_ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
            ):
                tls.sendall(b"hello")
                reply = tls.recv(8)
        except (ssl.SSLError, OSError):
            pass
        thread.join()
    return reply == b"ACCEPTED", " ".join(server_error)


def openssl_ok(layout: PkiLayout, cert: Path) -> bool:
    cmd = ["openssl", "verify", "-CAfile", str(layout.bundle), "-crl_check_all", "-CRLfile", str(layout.crl)]
    return (
        subprocess.run(
            [*cmd, "-purpose", "sslclient", str(cert)], capture_output=True, check=False
        ).returncode
        == 0
    )


def keep_copy(layout: PkiLayout, name: str, where: Path) -> tuple[Path, Path]:
    where.mkdir()
    cert = shutil.copy(layout.leaf_cert(Kind.CLIENT, name), where / "client.pem")
    key = shutil.copy(layout.leaf_key(Kind.CLIENT, name), where / "client.key")
    return Path(cert), Path(key)


def issuer(path: Path) -> x509.Name:
    return x509.load_pem_x509_certificate(path.read_bytes()).issuer


@pytest.fixture
def layout(tmp_path: Path) -> PkiLayout:
    layout = PkiLayout(tmp_path / "certs")
    generate(layout, SPECS)
    return layout


def test_rotation_overlap_then_only_new(layout, tmp_path):
    old_ca = x509.load_pem_x509_certificate(layout.ca_cert.read_bytes())
    old_client = keep_copy(layout, "cam-old", tmp_path / "old-client")
    accepted, _ = handshake(layout, *old_client)
    assert accepted

    # Step 1: a new CA; both are trusted, both have a CRL; leaf certificates are untouched.
    started = rotation.start(layout)
    new_ca = x509.load_pem_x509_certificate(layout.ca_cert.read_bytes())
    assert new_ca.subject != old_ca.subject
    assert x509.load_pem_x509_certificates(layout.bundle.read_bytes()) == [new_ca, old_ca]
    assert layout.crl.read_bytes().count(b"BEGIN X509 CRL") == 2
    assert set(started.remaining) == {(Kind.SERVER, "srv"), (Kind.CLIENT, "cam-old")}
    assert issuer(layout.leaf_cert(Kind.CLIENT, "cam-old")) == old_ca.subject

    # During the overlap generate issues new hosts from the new CA and leaves the old leaves alone.
    actions = {a.name: a.action for a in generate(layout, WITH_NEW).leaves}
    assert actions == {"srv": "unchanged", "cam-old": "unchanged", "cam-new": "created"}
    new_client = (layout.leaf_cert(Kind.CLIENT, "cam-new"), layout.leaf_key(Kind.CLIENT, "cam-new"))
    assert issuer(new_client[0]) == new_ca.subject
    assert check(layout, WITH_NEW).ok

    # A server trusting the bundle accepts a client of either CA (server still has an old-CA cert).
    for client in (old_client, new_client):
        assert openssl_ok(layout, client[0])
        accepted, error = handshake(layout, *client)
        assert accepted, error

    # Step 2: re-issue every old-CA leaf; a client that has not received its new certificate yet
    # still gets in, now through a server whose certificate comes from the new CA.
    reissued = rotation.reissue(layout)
    assert {(a.kind, a.name) for a in reissued.leaves} == {(Kind.SERVER, "srv"), (Kind.CLIENT, "cam-old")}
    assert issuer(layout.leaf_cert(Kind.SERVER, "srv")) == new_ca.subject
    for client in (old_client, new_client):
        accepted, error = handshake(layout, *client)
        assert accepted, error

    # Step 3: the overlap ends; only new-CA certificates are accepted.
    finished = rotation.finish(layout)
    assert not layout.previous_dir.exists()
    assert finished.retired is not None and finished.retired.read_bytes().count(b"BEGIN CERTIFICATE") == 1
    assert not list(layout.retired_dir.glob("*.key"))
    assert x509.load_pem_x509_certificates(layout.bundle.read_bytes()) == [new_ca]
    assert layout.crl.read_bytes().count(b"BEGIN X509 CRL") == 1
    assert not openssl_ok(layout, old_client[0])
    accepted, error = handshake(layout, *old_client)
    assert not accepted
    assert "certificate verify failed" in error or "unknown ca" in error.lower()
    for client in (
        new_client,
        (layout.leaf_cert(Kind.CLIENT, "cam-old"), layout.leaf_key(Kind.CLIENT, "cam-old")),
    ):
        assert openssl_ok(layout, client[0])
        accepted, error = handshake(layout, *client)
        assert accepted, error
    assert check(layout, WITH_NEW).ok


def test_revoking_an_old_ca_leaf_during_overlap(layout, tmp_path):
    old_client = keep_copy(layout, "cam-old", tmp_path / "old-client")
    rotation.start(layout)
    serial = x509.load_pem_x509_certificate(old_client[0].read_bytes()).serial_number
    revoke(layout, "cam-old")
    previous_crl = x509.load_pem_x509_crl(layout.previous_crl.read_bytes())
    assert previous_crl.get_revoked_certificate_by_serial_number(serial) is not None
    assert len(list(x509.load_pem_x509_crl(layout.ca_crl.read_bytes()))) == 0
    accepted, error = handshake(layout, *old_client)
    assert not accepted and "revoked" in error


def test_finish_refuses_while_old_leaves_remain(layout):
    with pytest.raises(LauncherError, match="no rotation is in progress"):
        rotation.finish(layout)
    rotation.start(layout)
    with pytest.raises(LauncherError, match="already in progress"):
        rotation.start(layout)
    with pytest.raises(LauncherError, match="still issued by the previous CA") as info:
        rotation.finish(layout)
    assert "--reissue" in (info.value.fix or "")
    forced = rotation.finish(layout, force=True)
    assert set(forced.remaining) == {(Kind.SERVER, "srv"), (Kind.CLIENT, "cam-old")}
    # Leaves of the retired CA are now untrusted: check fails, generate re-issues them.
    report = check(layout, SPECS)
    assert not report.ok
    assert all(
        "not issued by a trusted CA" in r.problems for r in report.rows if r.kind in {"server", "client"}
    )
    actions = generate(layout, SPECS).leaves
    assert {a.action for a in actions} == {"reissued"}
    assert check(layout, SPECS).ok


def test_rotate_without_ca_is_an_error(tmp_path):
    with pytest.raises(LauncherError, match="no CA to rotate"):
        rotation.start(PkiLayout(tmp_path / "empty"))


def test_cli_rotation_steps(layout):
    runner = CliRunner()
    base = ["certs", "rotate", "--dir", str(layout.root)]
    first = runner.invoke(main, base)
    assert first.exit_code == 0, first.output
    assert "new CA" in first.output
    assert runner.invoke(main, ["certs", "check", "--dir", str(layout.root)]).exit_code == 0
    early = runner.invoke(main, [*base, "--finish"])
    assert early.exit_code == 2 and "--reissue" in early.output
    second = runner.invoke(main, [*base, "--reissue"])
    assert second.exit_code == 0 and "servers/srv" in second.output
    third = runner.invoke(main, [*base, "--finish"])
    assert third.exit_code == 0, third.output
    assert len(x509.load_pem_x509_certificates(layout.bundle.read_bytes())) == 1
    assert runner.invoke(main, ["certs", "check", "--dir", str(layout.root)]).exit_code == 0
