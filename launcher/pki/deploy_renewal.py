"""What `launcher deploy` does with the PKI before it validates: renew the short-lived server certificates
of the servers it deploys behind the mTLS proxy, and of the client hosts whose metrics gateway serves
mTLS (monitoring), when they are inside their renewal window.

Which servers run the proxy, which gateways serve mTLS, and which controller folder their certificates
come from, is the plan the validation uses (`tls_plan`, `certs_root` in launcher/validate/tls.py,
`monitoring_plan` in launcher/validate/monitoring.py), computed here from the same inventory and extra
vars. Anything wrong (an unreadable inventory, a broken CA) is left to the validation that follows,
which names the file and the fix.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
from rich.markup import escape

from launcher.console import make_console
from launcher.errors import LauncherError
from launcher.inventory import Inventory, load_inventory
from launcher.pki.layout import Kind, PkiLayout
from launcher.pki.renew import ServerRenewal, due_server_certificates, renew_server_certificates
from launcher.validate.monitoring import monitoring_plan
from launcher.validate.options import check_limit
from launcher.validate.tls import certs_root, remote_plan


def server_certificate_hosts(
    inventory: Inventory, extravars: Mapping[str, Any], limit: str | None = None
) -> dict[Path, list[str]]:
    """PKI folder -> the hosts of this run (`--limit`) that serve mTLS with a server certificate from
    it: the servers that run the mTLS proxy, the client hosts whose metrics gateway serves mTLS."""
    if not inventory.servers:
        return {}
    hosts, plan = remote_plan(inventory, extravars)
    gateways = monitoring_plan(inventory, plan, extravars).gateways
    selected, _ = check_limit(inventory, limit)
    by_root: dict[Path, list[str]] = {}
    for name in sorted({*plan.servers, *gateways}):
        if selected is None or name in selected:
            by_root.setdefault(certs_root(hosts[name])[0], []).append(name)
    return by_root


@dataclass(frozen=True)
class RenewalCheck:
    """The server certificates of a run inside their renewal window (renewed, unless a dry run), and
    each PKI folder that could not be read or renewed (a message naming the folder and the error)."""

    renewals: list[ServerRenewal] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


def check_renewals(
    inventory: Inventory | Sequence[Path],
    extravars: Mapping[str, Any],
    *,
    limit: str | None = None,
    dry_run: bool = False,
    now: datetime | None = None,
) -> RenewalCheck:
    """Renew (with `dry_run`: only find) the due server certificates of the run; print nothing, the
    caller reports the result (`launcher diff`: the due certificates and the failures as data).
    `inventory`: loaded already (`launcher deploy` validates the same one next), or its paths."""
    now = now or datetime.now(UTC)
    try:
        loaded = inventory if isinstance(inventory, Inventory) else load_inventory(inventory)
        by_root = server_certificate_hosts(loaded, extravars, limit)
    except LauncherError:
        return RenewalCheck()  # the validation reports the inventory's problem
    check = RenewalCheck()
    for root, names in by_root.items():
        layout = PkiLayout(root)
        existing = [n for n in names if layout.leaf_cert(Kind.SERVER, n).is_file()]
        if not existing:
            continue  # a missing certificate fails its host alone in the run ("run certs generate")
        try:
            due = due_server_certificates(layout, existing, now=now)  # no lock, nothing written
            if dry_run or not due:
                check.renewals.extend(due)
            else:
                check.renewals.extend(renew_server_certificates(layout, [d.name for d in due], now=now))
        except (LauncherError, OSError) as exc:
            verb = "check" if dry_run else "renew"
            check.failures.append(f"cannot {verb} the server certificates in {root}: {exc}")
    return check


def renew_before_deploy(
    inventory: Inventory | Sequence[Path],
    extravars: Mapping[str, Any],
    *,
    limit: str | None = None,
    dry_run: bool = False,
    json_output: bool = False,
    now: datetime | None = None,
) -> list[ServerRenewal]:
    """`check_renewals`, printing one line per renewal and failure (`launcher deploy`)."""
    now = now or datetime.now(UTC)
    check = check_renewals(inventory, extravars, limit=limit, dry_run=dry_run, now=now)
    _report(check.renewals, check.failures, now, json_output)
    return check.renewals


def _report(renewals: list[ServerRenewal], failures: list[str], now: datetime, json_output: bool) -> None:
    if json_output:
        for renewal in renewals:
            record = {
                "type": "certificate",
                "action": "renewed" if renewal.new_not_after else "would renew",
                "kind": Kind.SERVER.value,
                "host": renewal.name,
                "not_after": renewal.not_after.isoformat(),
                "new_not_after": renewal.new_not_after.isoformat() if renewal.new_not_after else None,
                "message": renewal.describe(now),
            }
            click.echo(json.dumps(record, sort_keys=True))
        for failure in failures:
            record = {"type": "certificate", "action": "failed", "message": failure}
            click.echo(json.dumps(record, sort_keys=True))
        return
    console = make_console(highlight=False)
    for renewal in renewals:
        console.print(f"[yellow]certificate[/]: {escape(renewal.describe(now))}")
    for failure in failures:
        make_console(stderr=True, highlight=False).print(f"[yellow]![/] {escape(failure)}")
