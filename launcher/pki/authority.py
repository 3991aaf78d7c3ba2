"""Certificate authorities: creating one, loading it, issuing leaf certificates and signing CRLs."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from launcher.pki.keys import KeyType, PrivateKey, generate_key, key_matches, key_type_of
from launcher.pki.layout import Kind
from launcher.pki.names import SanName

CA_NAME_PREFIX = "ovms-launcher CA"
ORGANIZATION = "ovms-launcher"
# Tolerate small clock differences between the controller and the hosts.
BACKDATE = timedelta(minutes=5)
_HASH = hashes.SHA256()


@dataclass(frozen=True)
class LeafSpec:
    """What a leaf certificate must say: its kind, host name (CN) and subject alternative names."""

    kind: Kind
    name: str
    sans: tuple[SanName, ...]


@dataclass(frozen=True)
class Authority:
    cert: x509.Certificate
    key: PrivateKey

    @property
    def name(self) -> str:
        return self.cert.subject.rfc4514_string()

    def issued(self, cert: x509.Certificate) -> bool:
        """True when `cert` carries this CA's name and a valid signature by its key."""
        if cert.issuer != self.cert.subject:
            return False
        try:
            cert.verify_directly_issued_by(self.cert)
        except (ValueError, TypeError, InvalidSignature):
            return False
        return True

    def issue(
        self,
        spec: LeafSpec,
        public_key: object,
        *,
        now: datetime,
        days: int,
        not_before: datetime | None = None,
        not_after: datetime | None = None,
    ) -> x509.Certificate:
        """Sign a leaf certificate; its validity never extends past the CA's own."""
        start = not_before or now - BACKDATE
        end = not_after or min(now + timedelta(days=days), self.cert.not_valid_after_utc)
        usage = (
            ExtendedKeyUsageOID.SERVER_AUTH if spec.kind is Kind.SERVER else ExtendedKeyUsageOID.CLIENT_AUTH
        )
        is_rsa = isinstance(public_key, rsa.RSAPublicKey)
        builder = (
            x509.CertificateBuilder()
            .subject_name(
                x509.Name(
                    [
                        x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANIZATION),
                        x509.NameAttribute(NameOID.COMMON_NAME, spec.name),
                    ]
                )
            )
            .issuer_name(self.cert.subject)
            .public_key(public_key)  # type: ignore[arg-type]
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=is_rsa,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)  # type: ignore[arg-type]
            .add_extension(self._authority_key_id(), critical=False)
        )
        if spec.sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(list(spec.sans)), critical=False)
        return builder.sign(self.key, _HASH)

    def sign_crl(
        self,
        revoked: Sequence[x509.RevokedCertificate],
        *,
        number: int,
        now: datetime,
        days: int,
    ) -> x509.CertificateRevocationList:
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(self.cert.subject)
            .last_update(now - BACKDATE)
            .next_update(now + timedelta(days=days))
            .add_extension(x509.CRLNumber(number), critical=False)
            .add_extension(self._authority_key_id(), critical=False)
        )
        for entry in revoked:
            builder = builder.add_revoked_certificate(entry)
        return builder.sign(self.key, _HASH)

    def _authority_key_id(self) -> x509.AuthorityKeyIdentifier:
        ski = self.cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)


def create_authority(key_type: KeyType, *, now: datetime, days: int) -> Authority:
    """A new self-signed CA; a random suffix keeps the names of successive CAs distinct."""
    key = generate_key(key_type)
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANIZATION),
            x509.NameAttribute(NameOID.COMMON_NAME, f"{CA_NAME_PREFIX} {secrets.token_hex(4)}"),
        ]
    )
    public = key.public_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .sign(key, _HASH)
    )
    return Authority(cert=cert, key=key)


def ca_problems(authority: Authority) -> list[str]:
    """Why a loaded CA cannot be used (empty when it is fine apart from its dates)."""
    problems = []
    if not key_matches(authority.cert, authority.key):
        problems.append("the CA key does not belong to the CA certificate")
    try:
        constraints = authority.cert.extensions.get_extension_for_class(x509.BasicConstraints).value
        if not constraints.ca:
            problems.append("the CA certificate is not marked as a CA (basicConstraints)")
    except x509.ExtensionNotFound:
        problems.append("the CA certificate has no basicConstraints extension")
    try:
        authority.cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    except x509.ExtensionNotFound:
        problems.append("the CA certificate has no subjectKeyIdentifier extension")
    if key_type_of(authority.key) is None:
        problems.append("the CA key is neither ECDSA P-256 nor RSA 3072")
    return problems


def cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def crl_pem(crl: x509.CertificateRevocationList) -> bytes:
    return crl.public_bytes(serialization.Encoding.PEM)
