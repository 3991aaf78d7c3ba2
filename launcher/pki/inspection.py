"""Inspecting one leaf certificate: chain, key, purpose, names, dates and revocation."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

from launcher.errors import LauncherError
from launcher.pki.crl import crl_path_for, revoked_serials
from launcher.pki.keys import key_matches, load_private_key
from launcher.pki.layout import Kind, PkiLayout
from launcher.pki.lifetimes import issued_days
from launcher.pki.names import san_set, san_text
from launcher.pki.permissions import key_mode_problem
from launcher.pki.store import CaState, load_certificate, load_crl

_USAGE = {Kind.SERVER: ExtendedKeyUsageOID.SERVER_AUTH, Kind.CLIENT: ExtendedKeyUsageOID.CLIENT_AUTH}


@dataclass
class LeafStatus:
    kind: Kind
    name: str
    cert_path: Path
    key_path: Path
    cert: x509.Certificate | None = None
    key_match: bool | None = None
    issuer_role: str = "unknown"
    chain_valid: bool = False
    revoked: bool = False
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def sans(self) -> list[str]:
        return [san_text(n) for n in leaf_sans(self.cert)] if self.cert is not None else []

    def days_left(self, now: datetime) -> int | None:
        if self.cert is None:
            return None
        return (self.cert.not_valid_after_utc - now) // timedelta(days=1)


def leaf_sans(cert: x509.Certificate) -> list[x509.GeneralName]:
    try:
        return list(cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value)
    except x509.ExtensionNotFound:
        return []


def verify_chain(
    cert: x509.Certificate, kind: Kind, trusted: list[x509.Certificate], now: datetime
) -> str | None:
    """None when `cert` chains to `trusted` for its purpose at `now`, else the reason."""
    if not trusted:
        return "no trusted CA"
    builder = PolicyBuilder().store(Store(trusted)).time(now)
    try:
        if kind is Kind.SERVER:
            names = [n for n in leaf_sans(cert) if isinstance(n, x509.DNSName | x509.IPAddress)]
            if not names:
                return "no DNS or IP subjectAltName"
            subject = (
                x509.verification.DNSName(names[0].value)  # type: ignore[attr-defined]
                if isinstance(names[0], x509.DNSName)
                else x509.verification.IPAddress(names[0].value)  # type: ignore[attr-defined]
            )
            builder.build_server_verifier(subject).verify(cert, [])
        else:
            builder.build_client_verifier().verify(cert, [])
    except VerificationError as exc:
        return str(exc)
    return None


def has_usage(cert: x509.Certificate, kind: Kind) -> bool:
    try:
        usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return False
    return _USAGE[kind] in usages


def inspect_leaf(
    layout: PkiLayout,
    state: CaState,
    kind: Kind,
    name: str,
    *,
    now: datetime,
    renew_within: timedelta,
    longest: int | None = None,
    expected_sans: frozenset[str] | None = None,
) -> LeafStatus:
    """Everything wrong with `servers|clients/<name>/`; `problems` empty means nothing to re-issue.

    `renew_within`: the renewal window of this kind; `longest`: days past which a certificate is re-issued
    anyway (launcher/pki/lifetimes.py).
    """
    status = LeafStatus(kind, name, layout.leaf_cert(kind, name), layout.leaf_key(kind, name))
    if not status.cert_path.exists():
        status.problems.append("certificate missing")
        return status
    try:
        status.cert = load_certificate(status.cert_path)
    except LauncherError as exc:
        status.problems.append(exc.message)
        return status
    cert = status.cert
    if not status.key_path.exists():
        status.problems.append("private key missing")
    else:
        try:
            status.key_match = key_matches(cert, load_private_key(status.key_path))
        except (OSError, ValueError) as exc:
            status.problems.append(f"private key unusable: {exc}")
        else:
            if not status.key_match:
                status.problems.append("private key does not match the certificate")
        mode_problem = key_mode_problem(status.key_path)
        if mode_problem is not None:
            status.problems.append(mode_problem)

    issuer = state.issuer_of(cert)
    status.issuer_role = state.role_of(issuer)
    if issuer is None:
        status.problems.append("not issued by a trusted CA")
    elif issuer is state.previous:
        status.notes.append("issued by the previous CA (rotation in progress)")
    if issuer is not None:
        crl = load_crl(crl_path_for(layout, state, issuer))
        status.revoked = cert.serial_number in revoked_serials(crl)
        if status.revoked:
            status.problems.append("revoked")

    if not has_usage(cert, kind):
        status.problems.append(f"extended key usage lacks {kind.value}Auth")
    reason = verify_chain(cert, kind, [a.cert for a in state.trusted], now)
    status.chain_valid = reason is None and issuer is not None
    not_after = cert.not_valid_after_utc
    if not_after <= now:
        status.problems.append(f"expired on {not_after:%Y-%m-%d}")
    elif not_after - now <= renew_within:
        status.problems.append(f"expires on {not_after:%Y-%m-%d}, within the renewal window")
    elif longest is not None and issued_days(cert) > longest:
        status.problems.append(
            f"issued for {issued_days(cert):.0f} days, longer than the {longest} days of a {kind.value} "
            f"certificate (--{kind.value}-days)"
        )
    if reason is not None and issuer is not None and not_after > now:
        status.problems.append(f"chain invalid: {reason}")

    if expected_sans is not None:
        actual = san_set(leaf_sans(cert))
        if actual != expected_sans:
            added = ", ".join(sorted(expected_sans - actual)) or "-"
            removed = ", ".join(sorted(actual - expected_sans)) or "-"
            status.problems.append(f"SANs differ from the inventory (missing: {added}; extra: {removed})")
    return status
