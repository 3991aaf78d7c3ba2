"""How long leaf certificates live, per kind, and how long before their end they are renewed.

Server certificates are short-lived: clients check no CRL (gRPC channel credentials, tritonclient and
ovmsclient take none), so the end of its certificate is what stops a stolen server key being trusted.
A deploy renews them inside their window (launcher/pki/renew.py). Client certificates live long:
servers do check the CRL, so a stolen client key is revoked instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from cryptography import x509

from launcher.pki.authority import BACKDATE
from launcher.pki.layout import Kind

DEFAULT_CLIENT_DAYS = 825
DEFAULT_RENEW_WITHIN = timedelta(days=30)  # clients, CRLs and the CA
DEFAULT_SERVER_DAYS = 30
DEFAULT_SERVER_RENEW_WITHIN = timedelta(days=10)
DEFAULT_CA_DAYS = 3650


@dataclass(frozen=True)
class Lifetimes:
    client_days: int = DEFAULT_CLIENT_DAYS
    renew_within: timedelta = DEFAULT_RENEW_WITHIN
    server_days: int = DEFAULT_SERVER_DAYS
    server_renew_within: timedelta = DEFAULT_SERVER_RENEW_WITHIN

    def days(self, kind: Kind) -> int:
        return self.server_days if kind is Kind.SERVER else self.client_days

    def window(self, kind: Kind) -> timedelta:
        return self.server_renew_within if kind is Kind.SERVER else self.renew_within

    def longest(self, kind: Kind) -> int | None:
        """Days past which a certificate of this kind is re-issued however long it has left (servers
        only: that is how server certificates issued before they became short-lived get shorter)."""
        return self.server_days if kind is Kind.SERVER else None

    def reach(self) -> timedelta:
        """How far ahead a new certificate may need the CA: its longest life plus its renewal window."""
        return max(timedelta(days=self.days(kind)) + self.window(kind) for kind in Kind)


def issued_days(cert: x509.Certificate) -> float:
    """How many days a certificate was issued for (without the backdating `Authority.issue` adds)."""
    return (cert.not_valid_after_utc - cert.not_valid_before_utc - BACKDATE) / timedelta(days=1)
