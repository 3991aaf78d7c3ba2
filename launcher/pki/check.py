"""`certs check`: one row per CA, CRL and leaf certificate, with everything that needs attention."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509

from launcher.pki.authority import Authority, LeafSpec
from launcher.pki.crl import crl_path_for, crl_problems, expected_trust_files
from launcher.pki.generate import merge_specs
from launcher.pki.inspection import inspect_leaf
from launcher.pki.layout import Kind, PkiLayout
from launcher.pki.lifetimes import (
    DEFAULT_RENEW_WITHIN,
    DEFAULT_SERVER_DAYS,
    DEFAULT_SERVER_RENEW_WITHIN,
    Lifetimes,
)
from launcher.pki.names import san_set
from launcher.pki.permissions import key_mode_problem
from launcher.pki.store import CaState, load_crl, load_state


@dataclass
class CheckRow:
    kind: str
    name: str
    subject: str = ""
    sans: list[str] = field(default_factory=list)
    issuer: str = ""
    not_after: str | None = None
    days_left: int | None = None
    key_match: bool | None = None
    chain_valid: bool | None = None
    revoked: bool | None = None
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, object]:
        return {**asdict(self), "ok": self.ok}


@dataclass
class CheckReport:
    directory: str
    renew_within_days: float
    rows: list[CheckRow]
    server_renew_within_days: float = DEFAULT_SERVER_RENEW_WITHIN / timedelta(days=1)

    @property
    def ok(self) -> bool:
        return all(row.ok for row in self.rows)

    def as_dict(self) -> dict[str, object]:
        return {
            "directory": self.directory,
            "renew_within_days": self.renew_within_days,
            "server_renew_within_days": self.server_renew_within_days,
            "ok": self.ok,
            "certificates": [row.as_dict() for row in self.rows],
        }


def _days_left(moment: datetime, now: datetime) -> int:
    return (moment - now) // timedelta(days=1)


def _dates(moment: datetime, now: datetime, renew_within: timedelta, what: str) -> list[str]:
    if moment <= now:
        return [f"{what} expired on {moment:%Y-%m-%d}"]
    if moment - now <= renew_within:
        return [f"{what} expires on {moment:%Y-%m-%d}, within the renewal window"]
    return []


def _ca_row(
    authority: Authority, role: str, key_path: Path, now: datetime, renew_within: timedelta
) -> CheckRow:
    cert = authority.cert
    row = CheckRow(
        kind="ca" if role == "current" else "ca (previous)",
        name="ca" if role == "current" else "ca/previous",
        subject=cert.subject.rfc4514_string(),
        issuer=cert.issuer.rfc4514_string(),
        not_after=cert.not_valid_after_utc.isoformat(),
        days_left=_days_left(cert.not_valid_after_utc, now),
        key_match=True,  # load_state refuses a CA whose key does not match
        chain_valid=authority.issued(cert),
    )
    row.problems += _dates(cert.not_valid_after_utc, now, renew_within, "CA")
    if row.problems:
        row.notes.append("rotate the CA: `launcher certs rotate` (docs/pki.md)")
    mode_problem = key_mode_problem(key_path, "CA key")
    if mode_problem is not None:
        row.problems.append(mode_problem)
    if role == "previous":
        row.notes.append("rotation in progress: finish with `launcher certs rotate --finish`")
    return row


def _crl_row(
    layout: PkiLayout, state: CaState, authority: Authority, now: datetime, renew_within: timedelta
) -> CheckRow:
    path = crl_path_for(layout, state, authority)
    crl = load_crl(path)
    row = CheckRow(kind="crl", name=str(path.relative_to(layout.root)), issuer=authority.name)
    if crl is not None:
        row.not_after = crl.next_update_utc.isoformat() if crl.next_update_utc else None
        row.days_left = _days_left(crl.next_update_utc, now) if crl.next_update_utc else None
        row.notes.append(f"{len(list(crl))} revoked")
    row.problems += [f"CRL {p}" for p in crl_problems(crl, authority, now=now, renew_within=renew_within)]
    return row


def _trust_rows(layout: PkiLayout, state: CaState) -> list[CheckRow]:
    expected = expected_trust_files(layout, state)
    rows = []
    for path, data in ((layout.bundle, expected.bundle), (layout.crl, expected.crl)):
        row = CheckRow(kind="trust", name=path.name)
        if not path.exists():
            row.problems.append("missing: run `launcher certs generate`")
        elif path.read_bytes() != data:
            row.problems.append("out of date: run `launcher certs generate`")
        elif path == layout.bundle:
            row.notes.append(f"{len(x509.load_pem_x509_certificates(data))} CA(s)")
        rows.append(row)
    return rows


def check(
    layout: PkiLayout,
    specs: Iterable[LeafSpec] | None = None,
    *,
    renew_within: timedelta = DEFAULT_RENEW_WITHIN,
    server_renew_within: timedelta = DEFAULT_SERVER_RENEW_WITHIN,
    server_days: int = DEFAULT_SERVER_DAYS,
    now: datetime | None = None,
) -> CheckReport:
    """Inspect everything under `layout`; with `specs` (from an inventory) also what is missing or stale.

    The windows and the server lifetime mean what they mean to `certs generate`: a row has a problem
    exactly when generate would act on it (re-issue, re-sign, or chmod a key).
    """
    now = now or datetime.now(UTC)
    lifetimes = Lifetimes(
        renew_within=renew_within, server_days=server_days, server_renew_within=server_renew_within
    )
    days = timedelta(days=1)
    report = CheckReport(str(layout.root), renew_within / days, [], server_renew_within / days)
    state = load_state(layout)
    if state.current is None:
        report.rows.append(CheckRow(kind="ca", name="ca", problems=["no CA: run `launcher certs generate`"]))
    for authority in state.trusted:
        role = state.role_of(authority)
        key_path = layout.ca_key if role == "current" else layout.previous_key
        report.rows.append(_ca_row(authority, role, key_path, now, renew_within))
    for authority in state.trusted:
        report.rows.append(_crl_row(layout, state, authority, now, renew_within))
    if state.current is not None:
        report.rows += _trust_rows(layout, state)

    wanted = {(s.kind, s.name): s for s in merge_specs(specs)} if specs is not None else None
    leaves = list(layout.existing_leaves())
    leaves += [key for key in (wanted or {}) if key not in leaves]
    for kind, name in sorted(leaves, key=lambda leaf: (list(Kind).index(leaf[0]), leaf[1])):
        spec = wanted.get((kind, name)) if wanted is not None else None
        status = inspect_leaf(
            layout,
            state,
            kind,
            name,
            now=now,
            renew_within=lifetimes.window(kind),
            longest=lifetimes.longest(kind),
            expected_sans=san_set(spec.sans) if spec is not None else None,
        )
        cert = status.cert
        row = CheckRow(
            kind=kind.value,
            name=name,
            subject=cert.subject.rfc4514_string() if cert else "",
            sans=status.sans,
            issuer=cert.issuer.rfc4514_string() if cert else "",
            not_after=cert.not_valid_after_utc.isoformat() if cert else None,
            days_left=status.days_left(now),
            key_match=status.key_match,
            chain_valid=status.chain_valid if cert else None,
            revoked=status.revoked if cert else None,
            problems=list(status.problems),
            notes=list(status.notes),
        )
        if wanted is not None and spec is None:
            row.notes.append("not in the inventory")
        report.rows.append(row)
    return report
