"""`certs generate`: bring certs/ to the wanted state, changing only what must change."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509

from launcher.errors import LauncherError
from launcher.pki.authority import Authority, LeafSpec, cert_pem, create_authority
from launcher.pki.crl import DEFAULT_CRL_DAYS, crl_path_for, refresh_crl, write_trust_files
from launcher.pki.files import (
    PRIVATE_DIR_MODE,
    PRIVATE_FILE_MODE,
    PUBLIC_FILE_MODE,
    ensure_dir,
    exclusive,
    write_atomic,
)
from launcher.pki.inspection import inspect_leaf, leaf_sans
from launcher.pki.keys import DEFAULT_KEY_TYPE, KeyType, generate_key, key_type_of, private_key_pem
from launcher.pki.layout import Kind, PkiLayout
from launcher.pki.lifetimes import (
    DEFAULT_CA_DAYS,
    DEFAULT_CLIENT_DAYS,
    DEFAULT_RENEW_WITHIN,
    DEFAULT_SERVER_DAYS,
    DEFAULT_SERVER_RENEW_WITHIN,
    Lifetimes,
)
from launcher.pki.names import SanName, san_set, validate_host_name
from launcher.pki.permissions import ModeFix, fix_key_modes
from launcher.pki.store import CaState, load_state


@dataclass(frozen=True)
class GenerateOptions:
    key_type: KeyType | None = None  # None: keep each existing key's type, ECDSA P-256 for new keys
    days: int = DEFAULT_CLIENT_DAYS  # client certificates
    ca_days: int = DEFAULT_CA_DAYS
    crl_days: int = DEFAULT_CRL_DAYS
    renew_within: timedelta = DEFAULT_RENEW_WITHIN  # client certificates, CRLs and the CA
    force: bool = False
    server_days: int = DEFAULT_SERVER_DAYS
    server_renew_within: timedelta = DEFAULT_SERVER_RENEW_WITHIN

    @property
    def lifetimes(self) -> Lifetimes:
        return Lifetimes(self.days, self.renew_within, self.server_days, self.server_renew_within)


@dataclass(frozen=True)
class LeafAction:
    kind: Kind
    name: str
    action: str  # "created", "reissued" or "unchanged"
    reasons: tuple[str, ...] = ()


@dataclass
class GenerateResult:
    ca_created: bool = False
    leaves: list[LeafAction] = field(default_factory=list)
    written: list[Path] = field(default_factory=list)
    not_wanted: list[tuple[Kind, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    modes_fixed: list[ModeFix] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.written or self.modes_fixed)


def merge_specs(specs: Iterable[LeafSpec]) -> list[LeafSpec]:
    """One spec per (kind, name); SANs of repeated entries are united."""
    merged: dict[tuple[Kind, str], LeafSpec] = {}
    for spec in specs:
        try:
            validate_host_name(spec.name)
        except ValueError as exc:
            raise LauncherError(str(exc), key=spec.name, fix="rename the host") from None
        key = (spec.kind, spec.name)
        if key in merged:
            old = merged[key]
            extra = tuple(s for s in spec.sans if s not in old.sans)
            merged[key] = LeafSpec(spec.kind, spec.name, old.sans + extra)
        else:
            merged[key] = spec
    return list(merged.values())


def prepare_layout(layout: PkiLayout) -> None:
    ensure_dir(layout.root)
    ensure_dir(layout.ca_dir)
    for kind in Kind:
        ensure_dir(layout.kind_dir(kind))


def ensure_ca(layout: PkiLayout, options: GenerateOptions, now: datetime, result: GenerateResult) -> CaState:
    state = load_state(layout)
    if state.current is None:
        authority = create_authority(options.key_type or DEFAULT_KEY_TYPE, now=now, days=options.ca_days)
        save_authority(layout.ca_cert, layout.ca_key, authority)
        result.ca_created = True
        result.written += [layout.ca_key, layout.ca_cert]
        state = CaState(current=authority, previous=state.previous)
    assert state.current is not None
    not_after = state.current.cert.not_valid_after_utc
    if not_after <= now:
        raise LauncherError(
            f"the CA expired on {not_after:%Y-%m-%d}; no certificate it signs is trusted",
            file=layout.ca_cert,
            fix="start a new CA with `launcher certs rotate` (see docs/pki.md)",
        )
    if not_after - now <= options.lifetimes.reach():
        result.warnings.append(
            f"the CA expires on {not_after:%Y-%m-%d}: new certificates are cut short to that date; "
            "plan a rotation (`launcher certs rotate`, docs/pki.md)"
        )
    return state


def save_authority(cert_path: Path, key_path: Path, authority: Authority) -> None:
    ensure_dir(cert_path.parent)
    write_atomic(key_path, private_key_pem(authority.key), PRIVATE_FILE_MODE)
    write_atomic(cert_path, cert_pem(authority.cert), PUBLIC_FILE_MODE)


def issue_leaf(
    layout: PkiLayout, authority: Authority, spec: LeafSpec, key_type: KeyType, *, now: datetime, days: int
) -> list[Path]:
    """Write a new key and certificate for `spec` (the key first, so a crash never pairs them wrongly)."""
    directory = layout.leaf_dir(spec.kind, spec.name)
    ensure_dir(directory, PRIVATE_DIR_MODE)
    key = generate_key(key_type)
    cert = authority.issue(spec, key.public_key(), now=now, days=days)
    key_path, cert_path = layout.leaf_key(spec.kind, spec.name), layout.leaf_cert(spec.kind, spec.name)
    write_atomic(key_path, private_key_pem(key), PRIVATE_FILE_MODE)
    write_atomic(cert_path, cert_pem(cert), PUBLIC_FILE_MODE)
    return [key_path, cert_path]


def reissue_leaf(
    layout: PkiLayout,
    authority: Authority,
    kind: Kind,
    name: str,
    old: x509.Certificate,
    *,
    key_type: KeyType | None,
    now: datetime,
    days: int,
) -> list[Path]:
    """Issue the leaf (kind, name) again with `authority`: the same names (SANs) as `old`, a new key of
    `key_type` (None: the type of `old`'s key)."""
    sans = tuple(n for n in leaf_sans(old) if isinstance(n, SanName))  # type: ignore[arg-type]
    chosen = key_type or key_type_of(old.public_key()) or DEFAULT_KEY_TYPE
    return issue_leaf(layout, authority, LeafSpec(kind, name, sans), chosen, now=now, days=days)


@exclusive
def generate(
    layout: PkiLayout,
    specs: Iterable[LeafSpec],
    options: GenerateOptions | None = None,
    *,
    now: datetime | None = None,
) -> GenerateResult:
    options = options or GenerateOptions()
    now = now or datetime.now(UTC)
    result = GenerateResult()
    wanted = merge_specs(specs)  # validates the names before anything is written
    prepare_layout(layout)
    # Before the leaves are inspected: a key's mode is fixed, not a reason to re-issue it.
    result.modes_fixed = fix_key_modes(layout)
    state = ensure_ca(layout, options, now, result)
    assert state.current is not None

    for authority in state.trusted:
        path = crl_path_for(layout, state, authority)
        if refresh_crl(path, authority, now=now, days=options.crl_days, renew_within=options.renew_within):
            result.written.append(path)

    lifetimes = options.lifetimes
    for spec in wanted:
        status = inspect_leaf(
            layout,
            state,
            spec.kind,
            spec.name,
            now=now,
            renew_within=lifetimes.window(spec.kind),
            longest=lifetimes.longest(spec.kind),
            expected_sans=san_set(spec.sans),
        )
        reasons = list(status.problems)
        current_type = key_type_of(status.cert.public_key()) if status.cert is not None else None
        if options.key_type is not None and status.cert is not None and current_type is not options.key_type:
            reasons.append(f"key type is {current_type or 'unsupported'}, {options.key_type} wanted")
        if options.force and not reasons:
            reasons.append("--force")
        if not reasons:
            result.leaves.append(LeafAction(spec.kind, spec.name, "unchanged"))
            continue
        key_type = options.key_type or current_type or DEFAULT_KEY_TYPE
        days = lifetimes.days(spec.kind)
        result.written += issue_leaf(layout, state.current, spec, key_type, now=now, days=days)
        action = "created" if status.cert is None and "certificate missing" in reasons else "reissued"
        result.leaves.append(LeafAction(spec.kind, spec.name, action, tuple(reasons)))

    wanted_keys = {(s.kind, s.name) for s in wanted}
    result.not_wanted = [leaf for leaf in layout.existing_leaves() if leaf not in wanted_keys]
    result.written += write_trust_files(layout, state)
    return result
