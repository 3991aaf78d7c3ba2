"""`certs rotate`: replace the CA without an outage, in three steps with a trust overlap.

1. start: the current CA becomes `ca/previous/`, a new CA is made, ca-bundle.pem and crl.pem hold
   both. Leaf certificates are untouched. Deploy, so every host trusts both CAs.
2. reissue: every leaf certificate of the previous CA is re-issued by the new one. Deploy (hosts
   may roll one by one: all of them trust both CAs).
3. finish: the previous CA leaves the bundle and the CRL; its key is destroyed, its certificate
   kept under `ca/retired/`. Deploy.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from launcher.errors import LauncherError
from launcher.pki.authority import create_authority
from launcher.pki.crl import refresh_crl, write_trust_files
from launcher.pki.files import PUBLIC_FILE_MODE, ensure_dir, exclusive, write_atomic
from launcher.pki.generate import GenerateOptions, LeafAction, reissue_leaf, save_authority
from launcher.pki.keys import KeyType, key_type_of
from launcher.pki.layout import Kind, PkiLayout, kind_folder
from launcher.pki.store import load_certificate, load_state


@dataclass
class RotateResult:
    step: str
    new_ca: str | None = None
    leaves: list[LeafAction] = field(default_factory=list)
    retired: Path | None = None
    remaining: list[tuple[Kind, str]] = field(default_factory=list)


def leaves_of_previous(layout: PkiLayout) -> list[tuple[Kind, str]]:
    state = load_state(layout)
    if state.previous is None:
        return []
    found = []
    for kind, name in layout.existing_leaves():
        path = layout.leaf_cert(kind, name)
        if path.exists() and state.previous.issued(load_certificate(path)):
            found.append((kind, name))
    return found


@exclusive
def start(
    layout: PkiLayout, options: GenerateOptions | None = None, *, now: datetime | None = None
) -> RotateResult:
    options = options or GenerateOptions()
    now = now or datetime.now(UTC)
    state = load_state(layout)
    if state.current is None:
        raise LauncherError(
            "there is no CA to rotate yet", file=layout.ca_cert, fix="run `launcher certs generate`"
        )
    if state.previous is not None:
        raise LauncherError(
            "a rotation is already in progress (ca/previous/ exists)",
            file=layout.previous_dir,
            fix="complete it: `launcher certs rotate --reissue`, deploy, `launcher certs rotate --finish`",
        )
    ensure_dir(layout.previous_dir)
    for src, dst in (
        (layout.ca_key, layout.previous_key),
        (layout.ca_cert, layout.previous_cert),
        (layout.ca_crl, layout.previous_crl),
    ):
        if src.exists():
            src.replace(dst)
    key_type = options.key_type or key_type_of(state.current.key) or KeyType.ECDSA_P256
    authority = create_authority(key_type, now=now, days=options.ca_days)
    save_authority(layout.ca_cert, layout.ca_key, authority)
    state = load_state(layout)
    for auth, path in ((state.current, layout.ca_crl), (state.previous, layout.previous_crl)):
        assert auth is not None
        refresh_crl(path, auth, now=now, days=options.crl_days, renew_within=options.renew_within)
    write_trust_files(layout, state)
    return RotateResult(step="start", new_ca=authority.name, remaining=leaves_of_previous(layout))


@exclusive
def reissue(
    layout: PkiLayout, options: GenerateOptions | None = None, *, now: datetime | None = None
) -> RotateResult:
    """Re-issue every leaf of the previous CA with the new CA, keeping its names and key type."""
    options = options or GenerateOptions()
    now = now or datetime.now(UTC)
    state = load_state(layout)
    if state.previous is None or state.current is None:
        raise LauncherError(
            "no rotation is in progress",
            file=layout.previous_dir,
            fix="start one with `launcher certs rotate`",
        )
    result = RotateResult(step="reissue")
    for kind, name in leaves_of_previous(layout):
        cert = load_certificate(layout.leaf_cert(kind, name))
        days = options.lifetimes.days(kind)
        reissue_leaf(layout, state.current, kind, name, cert, key_type=options.key_type, now=now, days=days)
        result.leaves.append(LeafAction(kind, name, "reissued", ("issued by the previous CA",)))
    return result


@exclusive
def finish(layout: PkiLayout, *, force: bool = False) -> RotateResult:
    state = load_state(layout)
    if state.previous is None:
        raise LauncherError("no rotation is in progress", file=layout.previous_dir, fix="nothing to finish")
    remaining = leaves_of_previous(layout)
    if remaining and not force:
        names = ", ".join(f"{kind_folder(k)}/{n}" for k, n in remaining)
        raise LauncherError(
            f"certificates still issued by the previous CA would stop working: {names}",
            file=layout.root,
            fix="run `launcher certs rotate --reissue` and deploy first (or pass --force)",
        )
    ensure_dir(layout.retired_dir)
    serial = f"{state.previous.cert.serial_number:x}"
    retired = layout.retired_dir / f"ca-{state.previous.cert.not_valid_before_utc:%Y%m%d}-{serial[:16]}.pem"
    write_atomic(retired, layout.previous_cert.read_bytes(), PUBLIC_FILE_MODE)
    shutil.rmtree(layout.previous_dir)
    write_trust_files(layout, load_state(layout))
    return RotateResult(step="finish", retired=retired, remaining=remaining)
