"""`certs revoke NAME`: add a leaf certificate to its CA's CRL and move it out of the active layout.

Only servers check the CRL (nginx `ssl_crl`); clients take none (gRPC channel credentials, tritonclient
and ovmsclient have no CRL parameter). Revoking a client certificate locks that client out; revoking a
server certificate is bookkeeping only: clients go on trusting it (see `server_revocation_warning`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509

from launcher.errors import LauncherError
from launcher.pki.crl import DEFAULT_CRL_DAYS, crl_path_for, refresh_crl, write_trust_files
from launcher.pki.files import ensure_dir, exclusive
from launcher.pki.layout import Kind, PkiLayout, kind_folder
from launcher.pki.lifetimes import DEFAULT_RENEW_WITHIN
from launcher.pki.names import validate_host_name
from launcher.pki.store import load_certificate, load_state

REASONS = {
    "unspecified": x509.ReasonFlags.unspecified,
    "key-compromise": x509.ReasonFlags.key_compromise,
    "affiliation-changed": x509.ReasonFlags.affiliation_changed,
    "superseded": x509.ReasonFlags.superseded,
    "cessation-of-operation": x509.ReasonFlags.cessation_of_operation,
}


def server_revocation_warning(name: str, not_after: datetime) -> str:
    return (
        f"clients check no CRL, so every client goes on trusting the server certificate of {name} until "
        f"it expires on {not_after:%Y-%m-%d} or its CA is no longer trusted: the CRL only lets servers "
        "refuse revoked client certificates. Against a stolen server key: rotate the CA "
        "(`launcher certs rotate`, deploy, `launcher certs rotate --reissue`, deploy, "
        "`launcher certs rotate --finish`, deploy; docs/pki.md), and keep server certificates "
        "short-lived (`launcher certs generate --server-days`, renewed by every `launcher deploy`) "
        "so that a stolen one soon expires"
    )


@dataclass(frozen=True)
class RevokeResult:
    kind: Kind
    name: str
    serial: int
    archived_to: Path
    crl: Path
    not_after: datetime

    @property
    def warning(self) -> str | None:
        """What the revocation does not do (None for a client certificate: servers refuse it)."""
        return server_revocation_warning(self.name, self.not_after) if self.kind is Kind.SERVER else None


def find_leaf(layout: PkiLayout, name: str, kind: Kind | None) -> Kind:
    try:
        validate_host_name(name)
    except ValueError as exc:
        raise LauncherError(str(exc), key="NAME") from None
    kinds = [kind] if kind is not None else list(Kind)
    found = [k for k in kinds if layout.leaf_cert(k, name).exists()]
    if not found:
        where = " or ".join(str(layout.leaf_cert(k, name)) for k in kinds)
        raise LauncherError(
            f"no certificate for host {name!r} ({where} does not exist)",
            file=layout.root,
            fix="list the certificates with `launcher certs check`",
        )
    if len(found) > 1:
        raise LauncherError(
            f"{name!r} has both a server and a client certificate",
            file=layout.root,
            fix="say which one with --kind server or --kind client",
        )
    return found[0]


@exclusive
def revoke(
    layout: PkiLayout,
    name: str,
    *,
    kind: Kind | None = None,
    reason: str = "unspecified",
    crl_days: int = DEFAULT_CRL_DAYS,
    renew_within: timedelta = DEFAULT_RENEW_WITHIN,
    now: datetime | None = None,
) -> RevokeResult:
    now = now or datetime.now(UTC)
    if reason not in REASONS:
        raise LauncherError(f"unknown revocation reason {reason!r}", key="--reason", fix=", ".join(REASONS))
    kind = find_leaf(layout, name, kind)
    cert_path = layout.leaf_cert(kind, name)
    cert = load_certificate(cert_path)
    state = load_state(layout)
    issuer = state.issuer_of(cert)
    if issuer is None:
        raise LauncherError(
            "this certificate was not issued by a trusted CA, so no server accepts it anyway",
            file=cert_path,
            fix="delete its directory and run `launcher certs generate`",
        )
    entry = x509.RevokedCertificateBuilder().serial_number(cert.serial_number).revocation_date(now)
    if REASONS[reason] is not x509.ReasonFlags.unspecified:
        entry = entry.add_extension(x509.CRLReason(REASONS[reason]), critical=False)
    crl_path = crl_path_for(layout, state, issuer)
    refresh_crl(crl_path, issuer, now=now, days=crl_days, renew_within=renew_within, add=entry.build())

    archive = layout.revoked_dir / kind_folder(kind) / f"{name}-{cert.serial_number:x}"
    ensure_dir(archive)
    cert_path.replace(archive / cert_path.name)
    layout.leaf_key(kind, name).unlink(missing_ok=True)
    layout.leaf_dir(kind, name).rmdir()
    write_trust_files(layout, state)
    return RevokeResult(kind, name, cert.serial_number, archive, layout.crl, cert.not_valid_after_utc)
