"""`certs revoke` and CRL upkeep: what the CRL says, where the certificate goes, what happens next."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography import x509

from launcher.cli import main
from launcher.errors import LauncherError
from launcher.pki import Kind, PkiLayout, check, generate, revoke
from launcher.pki.plan import client_spec, server_spec


def openssl_verify(layout: PkiLayout, cert: Path, purpose: str) -> subprocess.CompletedProcess:
    cmd = ["openssl", "verify", "-CAfile", str(layout.bundle), "-crl_check", "-CRLfile", str(layout.crl)]
    return subprocess.run([*cmd, "-purpose", purpose, str(cert)], capture_output=True, text=True, check=False)


def load_crls(path: Path) -> list[x509.CertificateRevocationList]:
    text = path.read_text()
    blocks = text.split("-----END X509 CRL-----")
    return [x509.load_pem_x509_crl((b + "-----END X509 CRL-----\n").encode()) for b in blocks if "BEGIN" in b]


@pytest.fixture
def layout(tmp_path: Path) -> PkiLayout:
    layout = PkiLayout(tmp_path / "certs")
    generate(layout, SPECS)
    return layout


SPECS = [server_spec("srv", ["127.0.0.1"], []), client_spec("cam-1"), client_spec("cam-2")]


def test_empty_crl_is_signed_and_shipped(layout):
    ca = x509.load_pem_x509_certificate(layout.ca_cert.read_bytes())
    (crl,) = load_crls(layout.crl)
    assert crl.issuer == ca.subject
    assert crl.is_signature_valid(ca.public_key())
    assert len(list(crl)) == 0
    assert crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number == 1
    assert crl.next_update_utc - crl.last_update_utc >= timedelta(days=365)


def test_revoke_adds_serial_to_signed_crl(layout):
    cert_path = layout.leaf_cert(Kind.CLIENT, "cam-1")
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    copy = layout.root.parent / "cam-1.pem"
    copy.write_bytes(cert_path.read_bytes())
    assert openssl_verify(layout, copy, "sslclient").returncode == 0

    result = revoke(layout, "cam-1", reason="key-compromise")

    ca = x509.load_pem_x509_certificate(layout.ca_cert.read_bytes())
    (crl,) = load_crls(layout.crl)
    assert crl.is_signature_valid(ca.public_key())
    entry = crl.get_revoked_certificate_by_serial_number(cert.serial_number)
    assert entry is not None
    assert (
        entry.extensions.get_extension_for_class(x509.CRLReason).value.reason
        is x509.ReasonFlags.key_compromise
    )
    assert crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number == 2
    assert len(list(crl)) == 1
    assert layout.crl.read_bytes() == layout.ca_crl.read_bytes()

    failed = openssl_verify(layout, copy, "sslclient")
    assert failed.returncode != 0 and "certificate revoked" in failed.stdout + failed.stderr
    other = openssl_verify(layout, layout.leaf_cert(Kind.CLIENT, "cam-2"), "sslclient")
    assert other.returncode == 0, other.stdout + other.stderr

    # The revoked certificate leaves the active layout (its key is destroyed) ...
    assert not layout.leaf_dir(Kind.CLIENT, "cam-1").exists()
    assert (result.archived_to / "client.pem").read_bytes() == copy.read_bytes()
    assert not (result.archived_to / "client.key").exists()
    # ... so check against the inventory reports it missing, and generate issues a fresh one.
    report = check(layout, SPECS)
    assert not report.ok
    assert any(r.name == "cam-1" and "certificate missing" in r.problems for r in report.rows)
    actions = {a.name: a.action for a in generate(layout, SPECS).leaves}
    assert actions == {"srv": "unchanged", "cam-1": "created", "cam-2": "unchanged"}
    fresh = layout.leaf_cert(Kind.CLIENT, "cam-1")
    assert openssl_verify(layout, fresh, "sslclient").returncode == 0
    assert check(layout, SPECS).ok

    # A second revocation keeps the first entry.
    revoke(layout, "cam-2")
    (crl,) = load_crls(layout.crl)
    assert len(list(crl)) == 2
    assert crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number == 3


def test_unspecified_reason_has_no_reason_extension(layout):
    serial = x509.load_pem_x509_certificate(layout.leaf_cert(Kind.SERVER, "srv").read_bytes()).serial_number
    revoke(layout, "srv")
    (crl,) = load_crls(layout.crl)
    entry = crl.get_revoked_certificate_by_serial_number(serial)
    assert entry is not None and len(entry.extensions) == 0


def test_revoke_unknown_or_ambiguous_name(layout):
    with pytest.raises(LauncherError, match="no certificate for host 'nope'"):
        revoke(layout, "nope")
    with pytest.raises(LauncherError, match=r"host name '\.\./ca'"):
        revoke(layout, "../ca")
    generate(layout, [server_spec("cam-2", [], [])])
    with pytest.raises(LauncherError, match="both a server and a client") as info:
        revoke(layout, "cam-2")
    assert "--kind" in (info.value.fix or "")
    assert revoke(layout, "cam-2", kind=Kind.SERVER).kind is Kind.SERVER
    assert layout.leaf_cert(Kind.CLIENT, "cam-2").exists()


def test_crl_is_resigned_before_it_expires(layout):
    old = load_crls(layout.ca_crl)[0]
    revoke(layout, "cam-2")
    number = load_crls(layout.ca_crl)[0].extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    # Nothing to do while the CRL is fresh ...
    assert generate(layout, SPECS[:2]).written == []
    # ... but within the renewal window of its nextUpdate it is re-signed, keeping its entries.
    later = old.next_update_utc - timedelta(days=10)
    result = generate(layout, SPECS[:2], now=later)
    assert layout.ca_crl in result.written and layout.crl in result.written
    new = load_crls(layout.crl)[0]
    assert new.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number == number + 1
    assert len(list(new)) == 1
    assert new.next_update_utc > later + timedelta(days=300)


def test_cli_revoke(tmp_path):
    directory = tmp_path / "pki"
    runner = CliRunner()
    assert (
        runner.invoke(main, ["certs", "generate", "--dir", str(directory), "--client", "cam-7"]).exit_code
        == 0
    )
    result = runner.invoke(
        main, ["certs", "revoke", "--dir", str(directory), "cam-7", "--reason", "superseded"]
    )
    assert result.exit_code == 0, result.output
    assert "revoked" in result.output and "crl.pem" in result.output
    (crl,) = load_crls(directory / "crl.pem")
    assert len(list(crl)) == 1
    missing = runner.invoke(main, ["certs", "revoke", "--dir", str(directory), "cam-7"])
    assert missing.exit_code == 2 and "no certificate for host 'cam-7'" in " ".join(missing.output.split())


def test_revocation_time_is_recorded(tmp_path):
    layout = PkiLayout(tmp_path / "certs")
    when = datetime(2026, 3, 1, 8, 30, tzinfo=UTC)
    generate(layout, [client_spec("cam-1")], now=when)
    serial = x509.load_pem_x509_certificate(layout.leaf_cert(Kind.CLIENT, "cam-1").read_bytes()).serial_number
    revoke(layout, "cam-1", now=when + timedelta(hours=1))
    entry = load_crls(layout.crl)[0].get_revoked_certificate_by_serial_number(serial)
    assert entry is not None and entry.revocation_date_utc == when + timedelta(hours=1)


def test_cli_revoking_a_server_certificate_says_what_it_does_not_do(tmp_path):
    """Clients check no CRL: the output says so and names the two working answers to a stolen key."""
    directory = tmp_path / "pki"
    runner = CliRunner(env={"COLUMNS": "400"})
    made = runner.invoke(
        main, ["certs", "generate", "--dir", str(directory), "--server", "srv", "--client", "cam"]
    )
    assert made.exit_code == 0, made.output
    server = runner.invoke(
        main, ["certs", "revoke", "--dir", str(directory), "srv", "--reason", "key-compromise"]
    )
    assert server.exit_code == 0, server.output
    text = " ".join(server.output.split())
    assert "warning:" in text and "clients check no CRL" in text
    assert "launcher certs rotate" in text and "--reissue" in text and "--finish" in text
    assert "short-lived" in text and "--server-days" in text
    # the revocation itself still happens (nginx's CRL, the record)
    assert not (directory / "servers" / "srv").exists()
    assert len(list(load_crls(directory / "crl.pem")[0])) == 1
    client = runner.invoke(main, ["certs", "revoke", "--dir", str(directory), "cam"])
    assert client.exit_code == 0 and "warning" not in client.output


def test_revoke_result_warns_only_for_servers(layout):
    server = revoke(layout, "srv")
    assert server.warning is not None and "certs rotate" in server.warning
    assert server.not_after.strftime("%Y-%m-%d") in server.warning
    assert revoke(layout, "cam-1").warning is None
