"""Certificate revocation lists: one per trusted CA, kept fresh, concatenated into certs/crl.pem."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from cryptography import x509

from launcher.pki.authority import Authority, cert_pem, crl_pem
from launcher.pki.files import PUBLIC_FILE_MODE, write_atomic, write_if_changed
from launcher.pki.layout import PkiLayout
from launcher.pki.store import CaState, load_crl

DEFAULT_CRL_DAYS = 365


def crl_path_for(layout: PkiLayout, state: CaState, authority: Authority) -> Path:
    return layout.ca_crl if authority is state.current else layout.previous_crl


def crl_number(crl: x509.CertificateRevocationList) -> int:
    try:
        return crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    except x509.ExtensionNotFound:
        return 0


def crl_problems(
    crl: x509.CertificateRevocationList | None,
    authority: Authority,
    *,
    now: datetime,
    renew_within: timedelta,
) -> list[str]:
    """Why this CA's CRL must be (re)signed; empty when it is current."""
    if crl is None:
        return ["missing"]
    if crl.issuer != authority.cert.subject or not crl.is_signature_valid(authority.cert.public_key()):  # type: ignore[arg-type]
        return ["not signed by this CA"]
    next_update = crl.next_update_utc
    if next_update is None:
        return ["has no nextUpdate"]
    if next_update <= now:
        return [f"expired on {next_update:%Y-%m-%d} (servers then reject every client)"]
    if next_update - now <= renew_within:
        return [f"expires on {next_update:%Y-%m-%d}, within the renewal window"]
    return []


def refresh_crl(
    path: Path,
    authority: Authority,
    *,
    now: datetime,
    days: int,
    renew_within: timedelta,
    add: x509.RevokedCertificate | None = None,
) -> bool:
    """Re-sign the CA's CRL when it is missing, stale or gains an entry. True when written."""
    crl = load_crl(path)
    problems = crl_problems(crl, authority, now=now, renew_within=renew_within)
    if not problems and add is None:
        return False
    valid_old = crl is not None and problems != ["not signed by this CA"]
    entries = list(crl) if crl is not None and valid_old else []
    if add is not None and all(e.serial_number != add.serial_number for e in entries):
        entries.append(add)
    number = crl_number(crl) + 1 if crl is not None and valid_old else 1
    new = authority.sign_crl(entries, number=number, now=now, days=days)
    write_atomic(path, crl_pem(new), PUBLIC_FILE_MODE)
    return True


def revoked_serials(crl: x509.CertificateRevocationList | None) -> frozenset[int]:
    return frozenset(e.serial_number for e in crl) if crl is not None else frozenset()


@dataclass(frozen=True)
class TrustFiles:
    bundle: bytes
    crl: bytes


def expected_trust_files(layout: PkiLayout, state: CaState) -> TrustFiles:
    """ca-bundle.pem and crl.pem as they must be: current CA first, then the previous one."""
    bundle = b"".join(cert_pem(a.cert) for a in state.trusted)
    crls = []
    for authority in state.trusted:
        path = crl_path_for(layout, state, authority)
        crls.append(path.read_bytes() if path.exists() else b"")
    return TrustFiles(bundle=bundle, crl=b"".join(crls))


def write_trust_files(layout: PkiLayout, state: CaState) -> list[Path]:
    expected = expected_trust_files(layout, state)
    written = []
    if write_if_changed(layout.bundle, expected.bundle, PUBLIC_FILE_MODE):
        written.append(layout.bundle)
    if write_if_changed(layout.crl, expected.crl, PUBLIC_FILE_MODE):
        written.append(layout.crl)
    return written
