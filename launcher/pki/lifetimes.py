"""How long leaf certificates live, per kind, and how long before their end they are renewed.

Server certificates are short-lived: clients check no CRL (gRPC channel credentials, tritonclient and
ovmsclient take none), so the end of its certificate is what stops a stolen server key being trusted.
A deploy renews them inside their window (launcher/pki/renew.py). Client certificates live long:
servers do check the CRL, so a stolen client key is revoked instead.

The numbers are the roles': `ovms_common_pki_lifetimes` in roles/ovms_common/defaults/main.yml, read
here (as launcher/pki/layout.py reads the PKI layout); the monitoring's certificate alert reads the
same mapping.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from functools import cache

from cryptography import x509

from launcher.common_defaults import common_default, defaults_file
from launcher.errors import LauncherError
from launcher.pki.authority import BACKDATE
from launcher.pki.layout import Kind

LIFETIMES_VAR = "ovms_common_pki_lifetimes"
# the keys of the mapping, each a number of days
LIFETIME_KEYS = ("server_days", "server_renew_within_days", "client_days", "renew_within_days", "ca_days")


def issued_days(cert: x509.Certificate) -> float:
    """How many days a certificate was issued for (without the backdating `Authority.issue` adds)."""
    return (cert.not_valid_after_utc - cert.not_valid_before_utc - BACKDATE) / timedelta(days=1)


@cache
def role_lifetimes() -> Mapping[str, int]:
    """`ovms_common_pki_lifetimes` of roles/ovms_common/defaults/main.yml: days by key (LIFETIME_KEYS)."""
    value = common_default(LIFETIMES_VAR)
    wrong = (
        sorted(set(LIFETIME_KEYS).symmetric_difference(value))
        if isinstance(value, dict)
        else list(LIFETIME_KEYS)
    )
    if wrong or not all(type(value[k]) is int and value[k] > 0 for k in LIFETIME_KEYS):
        raise LauncherError(
            f"must map {', '.join(LIFETIME_KEYS)} to whole numbers of days above 0, got {value!r}",
            file=defaults_file(),
            key=LIFETIMES_VAR,
            fix="restore the mapping of the shipped roles/ovms_common/defaults/main.yml",
        )
    return {k: int(value[k]) for k in LIFETIME_KEYS}


DEFAULT_CLIENT_DAYS = role_lifetimes()["client_days"]
DEFAULT_RENEW_WITHIN = timedelta(days=role_lifetimes()["renew_within_days"])  # clients, CRLs and the CA
DEFAULT_SERVER_DAYS = role_lifetimes()["server_days"]
DEFAULT_SERVER_RENEW_WITHIN = timedelta(days=role_lifetimes()["server_renew_within_days"])
DEFAULT_CA_DAYS = role_lifetimes()["ca_days"]


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
