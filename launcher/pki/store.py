"""Loading the CA state of a certs/ directory: the current CA and, during a rotation, the previous one."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cryptography import x509

from launcher.errors import LauncherError
from launcher.pki.authority import Authority, ca_problems
from launcher.pki.keys import load_private_key
from launcher.pki.layout import PkiLayout


def load_certificate(path: Path) -> x509.Certificate:
    """The first certificate in a PEM file; a LauncherError naming the file otherwise."""
    try:
        return x509.load_pem_x509_certificate(path.read_bytes())
    except OSError as exc:
        raise LauncherError(f"cannot read the certificate: {exc.strerror}", file=path) from exc
    except ValueError as exc:
        raise LauncherError(
            f"not a PEM certificate: {exc}", file=path, fix="delete it and run `launcher certs generate`"
        ) from exc


def load_crl(path: Path) -> x509.CertificateRevocationList | None:
    if not path.exists():
        return None
    try:
        return x509.load_pem_x509_crl(path.read_bytes())
    except OSError as exc:
        raise LauncherError(f"cannot read the CRL: {exc.strerror}", file=path) from exc
    except ValueError as exc:
        raise LauncherError(
            f"not a PEM CRL: {exc}", file=path, fix="delete it and run `launcher certs generate`"
        ) from exc


def load_authority(cert_path: Path, key_path: Path) -> Authority | None:
    """None when neither file exists; a LauncherError when only one exists or they do not fit."""
    if not cert_path.exists() and not key_path.exists():
        return None
    if not key_path.exists():
        raise LauncherError(
            "the CA certificate exists but its key is missing, so nothing can be signed",
            file=key_path,
            fix="restore ca.key from your backup, or start a new CA with `launcher certs rotate`",
        )
    if not cert_path.exists():
        raise LauncherError(
            "the CA key exists but its certificate is missing",
            file=cert_path,
            fix="restore ca.pem from your backup (or delete ca.key to start a new, untrusted CA)",
        )
    cert = load_certificate(cert_path)
    try:
        key = load_private_key(key_path)
    except OSError as exc:
        raise LauncherError(f"cannot read the CA key: {exc.strerror}", file=key_path) from exc
    except ValueError as exc:
        raise LauncherError(f"unusable CA key: {exc}", file=key_path) from exc
    authority = Authority(cert=cert, key=key)
    problems = ca_problems(authority)
    if problems:
        raise LauncherError("; ".join(problems), file=cert_path, fix="restore the CA from your backup")
    return authority


@dataclass(frozen=True)
class CaState:
    current: Authority | None
    previous: Authority | None

    @property
    def trusted(self) -> list[Authority]:
        return [a for a in (self.current, self.previous) if a is not None]

    @property
    def rotating(self) -> bool:
        return self.previous is not None

    def issuer_of(self, cert: x509.Certificate) -> Authority | None:
        for authority in self.trusted:
            if authority.issued(cert):
                return authority
        return None

    def role_of(self, authority: Authority | None) -> str:
        if authority is None:
            return "unknown"
        return "current" if authority is self.current else "previous"


def load_state(layout: PkiLayout) -> CaState:
    current = load_authority(layout.ca_cert, layout.ca_key)
    previous = load_authority(layout.previous_cert, layout.previous_key)
    if previous is not None and current is None:
        raise LauncherError(
            "a previous CA exists but no current CA",
            file=layout.ca_cert,
            fix="restore ca/ca.pem and ca/ca.key from your backup",
        )
    return CaState(current=current, previous=previous)
