"""`certs generate`: the material itself (checked with cryptography and openssl), permissions, idempotence."""

from __future__ import annotations

import ipaddress
import os
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from launcher.cli import main
from launcher.errors import LauncherError
from launcher.pki import GenerateOptions, KeyType, Kind, PkiLayout, generate
from launcher.pki.plan import client_spec, server_spec

NOW = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)


def openssl_verify(
    layout: PkiLayout, cert: Path, purpose: str, *, crl: bool = True
) -> subprocess.CompletedProcess:
    cmd = ["openssl", "verify", "-CAfile", str(layout.bundle), "-purpose", purpose]
    if crl:
        cmd += ["-crl_check", "-CRLfile", str(layout.crl)]
    return subprocess.run([*cmd, str(cert)], capture_output=True, text=True, check=False)


def snapshot(root: Path) -> dict[str, tuple[bytes, int, int]]:
    return {
        str(p.relative_to(root)): (p.read_bytes(), p.stat().st_mtime_ns, p.stat().st_mode)
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def load(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


@pytest.fixture
def layout(tmp_path: Path) -> PkiLayout:
    return PkiLayout(tmp_path / "certs")


@pytest.fixture
def specs():
    return [
        server_spec(
            "ovms-server-1", ["192.0.2.10", "ovms-1.example.com"], ["DNS:ovms.example.com", "IP:2001:db8::10"]
        ),
        client_spec("camera-client-1"),
        client_spec("camera-client-2.example.com"),
    ]


def test_ca_and_leaf_material(layout, specs):
    result = generate(layout, specs, now=NOW)
    assert result.ca_created
    assert [(a.kind, a.name, a.action) for a in result.leaves] == [
        (Kind.SERVER, "ovms-server-1", "created"),
        (Kind.CLIENT, "camera-client-1", "created"),
        (Kind.CLIENT, "camera-client-2.example.com", "created"),
    ]

    ca = load(layout.ca_cert)
    constraints = ca.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical and constraints.value.ca
    usage = ca.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical and usage.value.key_cert_sign and usage.value.crl_sign
    assert ca.not_valid_after_utc - ca.not_valid_before_utc >= timedelta(days=3650)
    assert isinstance(ca.public_key(), ec.EllipticCurvePublicKey)
    assert isinstance(ca.signature_hash_algorithm, hashes.SHA256)

    for kind, name in [(Kind.SERVER, "ovms-server-1"), (Kind.CLIENT, "camera-client-1")]:
        cert = load(layout.leaf_cert(kind, name))
        assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == name
        assert cert.issuer == ca.subject
        cert.verify_directly_issued_by(ca)
        public = cert.public_key()
        assert isinstance(public, ec.EllipticCurvePublicKey) and public.curve.name == "secp256r1"
        assert isinstance(cert.signature_hash_algorithm, hashes.SHA256)
        basic = cert.extensions.get_extension_for_class(x509.BasicConstraints)
        assert basic.critical and not basic.value.ca
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        wanted = ExtendedKeyUsageOID.SERVER_AUTH if kind is Kind.SERVER else ExtendedKeyUsageOID.CLIENT_AUTH
        unwanted = ExtendedKeyUsageOID.CLIENT_AUTH if kind is Kind.SERVER else ExtendedKeyUsageOID.SERVER_AUTH
        assert wanted in eku and unwanted not in eku
        ku = cert.extensions.get_extension_for_class(x509.KeyUsage).value
        assert ku.digital_signature and not ku.key_cert_sign
        # short-lived server certificates, long-lived client ones
        assert cert.not_valid_after_utc - NOW == timedelta(days=30 if kind is Kind.SERVER else 825)


def test_openssl_verifies_chain_and_purpose(layout, specs):
    generate(layout, specs, now=datetime.now(UTC))
    server = layout.leaf_cert(Kind.SERVER, "ovms-server-1")
    client = layout.leaf_cert(Kind.CLIENT, "camera-client-1")
    for cert, good, bad in [(server, "sslserver", "sslclient"), (client, "sslclient", "sslserver")]:
        ok = openssl_verify(layout, cert, good)
        assert ok.returncode == 0, ok.stdout + ok.stderr
        assert f"{cert}: OK" in ok.stdout
        wrong = openssl_verify(layout, cert, bad)
        assert wrong.returncode != 0
        assert "unsuitable certificate purpose" in wrong.stdout + wrong.stderr


def test_server_sans_are_typed(layout, specs):
    generate(layout, specs, now=NOW)
    cert = load(layout.leaf_cert(Kind.SERVER, "ovms-server-1"))
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == [
        "ovms-server-1",
        "ovms-1.example.com",
        "ovms.example.com",
    ]
    assert sans.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address("192.0.2.10"),
        ipaddress.ip_address("2001:db8::10"),
    ]
    text = subprocess.run(
        [
            "openssl",
            "x509",
            "-noout",
            "-ext",
            "subjectAltName",
            "-in",
            str(layout.leaf_cert(Kind.SERVER, "ovms-server-1")),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "IP Address:192.0.2.10" in text and "DNS:ovms-1.example.com" in text
    assert "DNS:192.0.2.10" not in text


def test_private_material_permissions(layout, specs):
    old = os.umask(0)  # even a careless umask must not widen key or directory modes
    try:
        generate(layout, specs, now=NOW)
    finally:
        os.umask(old)

    def mode(p: Path) -> int:
        return p.stat().st_mode & 0o777

    assert mode(layout.ca_dir) == 0o700
    assert mode(layout.ca_key) == 0o600
    for kind, name in layout.existing_leaves():
        assert mode(layout.leaf_dir(kind, name)) == 0o700
        assert mode(layout.leaf_key(kind, name)) == 0o600
        assert mode(layout.leaf_cert(kind, name)) == 0o644
    assert mode(layout.bundle) == 0o644 and mode(layout.crl) == 0o644
    assert mode(layout.root) == 0o700


def test_second_run_is_byte_identical(layout, specs):
    generate(layout, specs, now=NOW)
    before = snapshot(layout.root)
    result = generate(layout, specs, now=NOW + timedelta(days=1))
    assert result.written == []
    assert not result.ca_created
    assert {a.action for a in result.leaves} == {"unchanged"}
    assert snapshot(layout.root) == before


def test_san_change_reissues_only_that_host(layout, specs):
    generate(layout, specs, now=NOW)
    before = snapshot(layout.root)
    changed = [server_spec("ovms-server-1", ["192.0.2.11"], []), *specs[1:]]
    result = generate(layout, changed, now=NOW)
    actions = {a.name: a for a in result.leaves}
    assert actions["ovms-server-1"].action == "reissued"
    assert any("SANs differ" in r and "IP:192.0.2.11" in r for r in actions["ovms-server-1"].reasons)
    assert actions["camera-client-1"].action == "unchanged"
    after = snapshot(layout.root)
    assert after["servers/ovms-server-1/server.pem"] != before["servers/ovms-server-1/server.pem"]
    assert after["servers/ovms-server-1/server.key"] != before["servers/ovms-server-1/server.key"]
    assert after["clients/camera-client-1/client.pem"] == before["clients/camera-client-1/client.pem"]
    assert after["ca/ca.pem"] == before["ca/ca.pem"]
    sans = load(layout.leaf_cert(Kind.SERVER, "ovms-server-1")).extensions.get_extension_for_class(
        x509.SubjectAlternativeName
    )
    assert sans.value.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("192.0.2.11")]


def test_renewal_window(layout, specs):
    specs = specs[1:]  # client certificates: --days and --renew-within (servers: test_pki_server_lifetime.py)
    generate(layout, specs, GenerateOptions(days=40), now=NOW)
    # 40 days left is outside a 30-day window: nothing happens.
    assert {a.action for a in generate(layout, specs, now=NOW).leaves} == {"unchanged"}
    # 20 days later, 20 days are left: inside the window, everything is re-issued with full validity.
    later = NOW + timedelta(days=20)
    result = generate(layout, specs, now=later)
    assert {a.action for a in result.leaves} == {"reissued"}
    assert all("within the renewal window" in " ".join(a.reasons) for a in result.leaves)
    assert load(layout.leaf_cert(Kind.CLIENT, "camera-client-1")).not_valid_after_utc == later + timedelta(
        days=825
    )
    assert {a.action for a in generate(layout, specs, now=later).leaves} == {"unchanged"}
    # A narrower window leaves a 40-day certificate alone; a wider one renews it.
    generate(layout, specs, GenerateOptions(days=40, force=True), now=NOW)
    narrow = GenerateOptions(renew_within=timedelta(days=7))
    assert {a.action for a in generate(layout, specs, narrow, now=NOW + timedelta(days=30)).leaves} == {
        "unchanged"
    }
    wide = GenerateOptions(renew_within=timedelta(days=60))
    assert {a.action for a in generate(layout, specs, wide, now=NOW).leaves} == {"reissued"}


def test_expired_certificate_is_reissued(layout, specs):
    generate(layout, specs, now=NOW)
    result = generate(layout, specs, now=NOW + timedelta(days=900))
    assert all(any(r.startswith("expired on") for r in a.reasons) for a in result.leaves)


def test_force_reissues_leaves_but_keeps_the_ca(layout, specs):
    generate(layout, specs, now=NOW)
    ca_before = layout.ca_cert.read_bytes()
    serials = {n: load(layout.leaf_cert(k, n)).serial_number for k, n in layout.existing_leaves()}
    result = generate(layout, specs, GenerateOptions(force=True), now=NOW)
    assert {a.action for a in result.leaves} == {"reissued"}
    assert layout.ca_cert.read_bytes() == ca_before
    assert all(load(layout.leaf_cert(k, n)).serial_number != serials[n] for k, n in layout.existing_leaves())


def test_missing_or_mismatched_key_is_reissued(layout, specs):
    generate(layout, specs, now=NOW)
    layout.leaf_key(Kind.CLIENT, "camera-client-1").unlink()
    other = layout.leaf_key(Kind.CLIENT, "camera-client-2.example.com")
    layout.leaf_key(Kind.SERVER, "ovms-server-1").write_bytes(other.read_bytes())
    result = {a.name: a for a in generate(layout, specs, now=NOW).leaves}
    assert result["camera-client-1"].reasons == ("private key missing",)
    assert result["ovms-server-1"].reasons == ("private key does not match the certificate",)
    assert result["camera-client-2.example.com"].action == "unchanged"


def test_rsa_option_and_key_type_change(layout, specs):
    result = generate(layout, specs[:2], GenerateOptions(key_type=KeyType.RSA_3072), now=datetime.now(UTC))
    assert result.ca_created
    for path in (layout.ca_cert, layout.leaf_cert(Kind.SERVER, "ovms-server-1")):
        public = load(path).public_key()
        assert isinstance(public, rsa.RSAPublicKey) and public.key_size == 3072
    server = load(layout.leaf_cert(Kind.SERVER, "ovms-server-1"))
    assert server.extensions.get_extension_for_class(x509.KeyUsage).value.key_encipherment
    assert openssl_verify(layout, layout.leaf_cert(Kind.SERVER, "ovms-server-1"), "sslserver").returncode == 0
    # Without --key-type existing keys keep their type; asking for ECDSA re-issues them as ECDSA.
    assert {a.action for a in generate(layout, specs[:2]).leaves} == {"unchanged"}
    result = generate(layout, specs[:2], GenerateOptions(key_type=KeyType.ECDSA_P256))
    assert {a.action for a in result.leaves} == {"reissued"}
    assert isinstance(
        load(layout.leaf_cert(Kind.CLIENT, "camera-client-1")).public_key(), ec.EllipticCurvePublicKey
    )


def test_leaf_validity_never_exceeds_the_ca(layout, specs):
    result = generate(layout, specs, GenerateOptions(ca_days=100, days=825), now=NOW)
    ca_end = load(layout.ca_cert).not_valid_after_utc
    assert load(layout.leaf_cert(Kind.CLIENT, "camera-client-1")).not_valid_after_utc == ca_end
    assert any("CA expires" in w for w in result.warnings)


def test_unsafe_host_name_is_refused(layout):
    from launcher.pki import LeafSpec

    with pytest.raises(LauncherError, match="host name"):
        generate(layout, [LeafSpec(Kind.CLIENT, "../../escape", ())])
    assert not (layout.root.parent / "escape").exists()
    assert not layout.ca_key.exists()


def test_ca_key_missing_is_an_error(layout, specs):
    generate(layout, specs, now=NOW)
    layout.ca_key.unlink()
    with pytest.raises(LauncherError) as info:
        generate(layout, specs, now=NOW)
    assert info.value.file == str(layout.ca_key)
    assert "certs rotate" in (info.value.fix or "")


def test_expired_ca_is_an_error(layout, specs):
    generate(layout, specs, GenerateOptions(ca_days=10), now=NOW)
    with pytest.raises(LauncherError, match="CA expired"):
        generate(layout, specs, now=NOW + timedelta(days=11))


def test_cli_generate_without_inventory(tmp_path):
    directory = tmp_path / "pki"
    args = ["certs", "generate", "--dir", str(directory), "--server", "edge-1", "--san", "IP:10.0.0.5"]
    result = CliRunner().invoke(main, [*args, "--client", "cam-9"])
    assert result.exit_code == 0, result.output
    assert "created" in result.output and "servers/edge-1" in result.output
    layout = PkiLayout(directory)
    sans = load(layout.leaf_cert(Kind.SERVER, "edge-1")).extensions.get_extension_for_class(
        x509.SubjectAlternativeName
    )
    assert [str(v) for v in sans.value.get_values_for_type(x509.IPAddress)] == ["10.0.0.5"]
    assert layout.leaf_cert(Kind.CLIENT, "cam-9").exists()
    again = CliRunner().invoke(main, [*args, "--client", "cam-9"])
    assert again.exit_code == 0 and "nothing changed" in again.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--server", "s", "--san", "URI:x"], "unsupported SAN type"),
        (["--server", "s", "--san", "IP:300.1.1.1"], "not a valid IP address"),
        (["--san", "DNS:x"], "--san needs at least one --server"),
        (["--client", "../evil"], "host name"),
    ],
)
def test_cli_generate_rejects_bad_input(tmp_path, args, message):
    result = CliRunner().invoke(main, ["certs", "generate", "--dir", str(tmp_path / "pki"), *args])
    assert result.exit_code == 2
    assert message in " ".join(result.output.split())


def test_host_files_never_include_the_ca_key(layout, specs):
    generate(layout, specs, now=NOW)
    server = layout.host_files(Kind.SERVER, "ovms-server-1")
    client = layout.host_files(Kind.CLIENT, "camera-client-1")
    assert set(server) == {"server.pem", "server.key", "ca-bundle.pem", "crl.pem"}
    assert set(client) == {"client.pem", "client.key", "ca-bundle.pem"}
    for path in [*server.values(), *client.values()]:
        assert path.is_file()
        assert layout.ca_dir not in path.parents
        assert b"PRIVATE KEY" not in path.read_bytes() or path.name.endswith(".key")
    assert server["server.key"].read_bytes() != layout.ca_key.read_bytes()


def test_generate_fixes_key_modes_without_reissuing(layout, specs):
    generate(layout, specs, now=NOW)
    leaf = layout.leaf_key(Kind.SERVER, "ovms-server-1")
    layout.ca_key.chmod(0o644)
    leaf.chmod(0o640)
    key_bytes = (layout.ca_key.read_bytes(), leaf.read_bytes())
    result = generate(layout, specs, now=NOW)
    assert {(f.path, f.was, f.ca) for f in result.modes_fixed} == {
        (layout.ca_key, 0o644, True),
        (leaf, 0o640, False),
    }
    assert layout.ca_key.stat().st_mode & 0o777 == 0o600 and leaf.stat().st_mode & 0o777 == 0o600
    assert {a.action for a in result.leaves} == {"unchanged"}
    assert (layout.ca_key.read_bytes(), leaf.read_bytes()) == key_bytes
    assert result.changed


def test_cli_generate_reports_fixed_key_modes(tmp_path):
    directory = tmp_path / "pki"
    args = ["certs", "generate", "--dir", str(directory), "--server", "edge-1"]
    assert CliRunner().invoke(main, args).exit_code == 0
    layout = PkiLayout(directory)
    layout.ca_key.chmod(0o644)
    result = CliRunner(env={"COLUMNS": "400"}).invoke(main, args)
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert f"fixed {layout.ca_key}: mode 644 -> 600" in text
    assert "launcher certs rotate" in text
    assert "changed 1 file(s)" in text
    assert layout.ca_key.stat().st_mode & 0o777 == 0o600
