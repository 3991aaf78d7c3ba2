"""`launcher diff`: what a deploy would change, per site and host (a drift report).

Validates like `launcher deploy` (its helpers, imported; nothing runs on invalid input), checks which
server certificates a deploy would renew (dry run), then runs playbooks/deploy.yml in check and diff
mode and summarises the changed results (launcher.drift). Exit 0: nothing would change; 3: something
would; 2: invalid input; 1: the check run failed on a host (or Ansible failed), or a PKI folder could
not be read; 130: interrupted.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from typing import Any

import click
from rich.markup import escape

from launcher.commands.deploy import (
    PLAYBOOKS,
    _inventories,
    _inventory_option,
    _validated,
)
from launcher.commands.options import default_forks, extra_vars_option, forks_option
from launcher.console import make_console
from launcher.drift import CertificateDue, DriftCollector, DriftReport, build_report, render_lines
from launcher.errors import LauncherError
from launcher.inventory import Inventory, load_inventory
from launcher.pki.deploy_renewal import check_renewals
from launcher.rollout import BATCH_EXTRAVARS
from launcher.runner import RunRequest, RunState, parse_extra_vars, run_playbook
from launcher.runner.session import outcome_summary
from launcher.runner.summary import EXIT_INVALID, RunSummary
from launcher.sites import site_of, sites


def _site_map(inventory: Inventory) -> tuple[dict[str, str], list[str]]:
    """host -> site, and the sites in inventory order."""
    return {host.name: site_of(host) for host in inventory.members()}, list(sites(inventory))


def _certificates_due(
    inventory: Inventory, extravars: dict[str, Any], limit: str | None
) -> tuple[list[CertificateDue], list[str]]:
    """The server certificates a deploy would renew, and the PKI folders that could not be read."""
    now = datetime.now(UTC)
    check = check_renewals(inventory, extravars, limit=limit, dry_run=True, now=now)
    due = [CertificateDue(d.name, d.not_after.isoformat(), d.describe(now)) for d in check.renewals]
    return due, list(check.failures)


def _host_status(summary: RunSummary) -> tuple[dict[str, str], dict[str, str]]:
    """host -> "failed" / "unreachable", and host -> its failed task and message (when known)."""
    status = {h.host: h.status for h in summary.failed_hosts}
    reasons = {h.host: f"{h.failure.task}: {h.failure.message}" for h in summary.failed_hosts if h.failure}
    return status, reasons


def _print_human(report: DriftReport, summary: RunSummary) -> None:
    console = make_console(highlight=False, soft_wrap=True)
    for line in render_lines(report):
        console.print(escape(line))
    if report.certificate_errors:
        make_console(stderr=True, highlight=False, soft_wrap=True).print(
            "[bold red]the certificate check failed[/]: which certificates a deploy would renew there is"
            " unknown; fix: `launcher certs check` names the unreadable files, then run the diff again"
        )
    if summary.exit_code:
        err = make_console(stderr=True, highlight=False, soft_wrap=True)
        # the hosts it failed on are in the report above ("not checked (failed: TASK: MESSAGE)")
        err.print(f"[bold red]the check run failed[/]: {escape(summary.message)}")
        if summary.run_dir:
            err.print(f"  run directory: {summary.run_dir}")
        return
    if report.certificate_errors:
        return
    changed = report.changed_hosts()
    total = sum(len(hosts) for hosts in report.sites.values())
    if changed:
        console.print(
            f"[yellow]a deploy would change {len(changed)} of {total} host(s)[/]: "
            + escape(", ".join(changed))
        )
    else:
        console.print(f"[green]nothing would change[/] on {total} host(s)")


def _options(func: Any) -> Any:
    for decorator in reversed(
        [
            _inventory_option,
            click.option("--limit", "-l", metavar="PATTERN", help="Only these hosts (Ansible host pattern)."),
            extra_vars_option(),
            click.option(
                "--json", "json_output", is_flag=True, help="One JSON document instead of the report."
            ),
            forks_option(),
        ]
    ):
        func = decorator(func)
    return func


@click.command("diff")
@_options
def diff(**options: Any) -> None:
    """What a deploy would change, per site and host (a check-mode run; exit 3 when anything would)."""
    extravars = parse_extra_vars(options["extra_vars"])
    json_output: bool = options["json_output"]
    limit: str | None = options.get("limit")
    inventories = _inventories(options["inventories"])
    try:
        inventory: Inventory | None = load_inventory(inventories)
    except LauncherError:
        inventory = None  # the validation below reports it, naming the file
    # validate first: on invalid input (exit 2) nothing runs, not even the certificate dry run
    report = _validated(inventories, extravars, json_output, limit=limit, tags=None, inventory=inventory)
    loaded = report.inventory
    if loaded is None:  # pragma: no cover - a valid report has its inventory
        sys.exit(EXIT_INVALID)
    certificates, certificate_errors = _certificates_due(loaded, extravars, limit)
    request = RunRequest(
        action="diff",
        playbook=PLAYBOOKS / "deploy.yml",
        inventories=inventories,
        # every host at once, none stopping the others (as in a roll-out's batch): a check run
        extravars={**extravars, **BATCH_EXTRAVARS},
        limit=limit,
        check=True,
        diff=True,
        forks=default_forks(len(loaded.members()), options.get("forks")),
    )
    state, collector = RunState(), DriftCollector()

    def on_event(event: dict[str, Any]) -> None:
        state.handle(event)
        collector.handle(event)

    if not json_output:
        make_console(stderr=True, highlight=False).print(
            "checking what a deploy would change (a check-mode run)…"
        )
    outcome = run_playbook(request, on_event)
    summary = outcome_summary("diff", state, outcome)
    site_map, site_order = _site_map(loaded)
    status, reasons = _host_status(summary)
    drift = build_report(
        collector.hosts,
        collector.changes(),
        site_map,
        certificates,
        site_order,
        status=status,
        reasons=reasons,
        certificate_errors=certificate_errors,
    )
    code = summary.exit_code or drift.exit_code
    if json_output:
        document = drift.to_dict()
        document["exit_code"] = code
        document["warnings"] = [w.to_dict() for w in report.warnings]
        if summary.exit_code:
            document["failed"] = summary.to_dict()
        click.echo(json.dumps(document, sort_keys=True))
    else:
        _print_human(drift, summary)
    sys.exit(code)
