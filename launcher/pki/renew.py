"""Renewing short-lived server certificates inside their renewal window, and nothing else.

`launcher deploy` calls this before it validates (launcher/pki/deploy_renewal.py): a server certificate
that expires within its window (or has expired) gets a new key and certificate with the same names from
the same CA; every other file stays as it is, so a deploy outside the window changes nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cryptography import x509

from launcher.errors import LauncherError
from launcher.pki.files import exclusive
from launcher.pki.generate import reissue_leaf
from launcher.pki.layout import Kind, PkiLayout
from launcher.pki.lifetimes import DEFAULT_SERVER_RENEW_WITHIN, issued_days
from launcher.pki.names import validate_host_name
from launcher.pki.store import load_certificate, load_state


@dataclass(frozen=True)
class ServerRenewal:
    name: str
    not_after: datetime  # of the certificate that is (or would be) replaced
    new_not_after: datetime | None = None  # None: not renewed (a dry run)

    def describe(self, now: datetime) -> str:
        if self.not_after <= now:
            when = f"it expired on {self.not_after:%Y-%m-%d}"
        else:
            days = (self.not_after - now) // timedelta(days=1)
            when = f"it expires in {days} day{'' if days == 1 else 's'} ({self.not_after:%Y-%m-%d})"
        if self.new_not_after is None:
            return f"would renew the server certificate of {self.name}: {when}"
        return (
            f"renewed the server certificate of {self.name}: {when}; "
            f"the new one is valid until {self.new_not_after:%Y-%m-%d}"
        )


def window_of(cert: x509.Certificate, renew_within: timedelta) -> timedelta:
    """The renewal window, at most half the certificate's life (a 7-day certificate is not renewed by
    every deploy because the window is 10 days)."""
    return min(renew_within, timedelta(days=issued_days(cert)) / 2)


def _due(layout: PkiLayout, names: Iterable[str], now: datetime, renew_within: timedelta) -> list[str]:
    """The names whose server certificate exists and expires within its window (or has expired).
    Anything else wrong with it (unreadable, wrong names, another CA) is left to `certs generate`,
    and validation reports what would stop the deploy."""
    due = []
    for name in dict.fromkeys(names):
        try:
            validate_host_name(name)
        except ValueError:
            continue
        path = layout.leaf_cert(Kind.SERVER, name)
        if not path.is_file():
            continue
        try:
            cert = load_certificate(path)
        except LauncherError:
            continue
        if cert.not_valid_after_utc - now <= window_of(cert, renew_within):
            due.append(name)
    return due


def due_server_certificates(
    layout: PkiLayout,
    names: Iterable[str],
    *,
    renew_within: timedelta = DEFAULT_SERVER_RENEW_WITHIN,
    now: datetime | None = None,
) -> list[ServerRenewal]:
    """What `renew_server_certificates` would renew (nothing is written)."""
    now = now or datetime.now(UTC)
    return [
        ServerRenewal(name, load_certificate(layout.leaf_cert(Kind.SERVER, name)).not_valid_after_utc)
        for name in _due(layout, names, now, renew_within)
    ]


@exclusive
def renew_server_certificates(
    layout: PkiLayout,
    names: Iterable[str],
    *,
    renew_within: timedelta = DEFAULT_SERVER_RENEW_WITHIN,
    days: int | None = None,
    now: datetime | None = None,
) -> list[ServerRenewal]:
    """Re-issue the server certificates of `names` that expire within `renew_within` (capped at half their
    life) or have expired: new key, same SANs, same CA, and `days` of validity (None: as long as the
    certificate replaced was issued for, so `certs generate --server-days` sticks). Client certificates,
    the CA, CRLs and certificates outside their window are not touched."""
    now = now or datetime.now(UTC)
    due = _due(layout, names, now, renew_within)
    if not due:
        return []
    state = load_state(layout)
    renewed = []
    for name in due:
        cert = load_certificate(layout.leaf_cert(Kind.SERVER, name))
        issuer = state.issuer_of(cert)
        if issuer is None or issuer.cert.not_valid_after_utc <= now:
            continue  # validation refuses it, naming the fix (`certs generate` or `certs rotate`)
        lifetime = days if days is not None else max(1, round(issued_days(cert)))
        reissue_leaf(layout, issuer, Kind.SERVER, name, cert, key_type=None, now=now, days=lifetime)
        new = load_certificate(layout.leaf_cert(Kind.SERVER, name))
        renewed.append(ServerRenewal(name, cert.not_valid_after_utc, new.not_valid_after_utc))
    return renewed
