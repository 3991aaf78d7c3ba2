"""`launcher diff`: what a deploy would change, per site and host (a drift report).

Validates like `launcher deploy` (its helpers, imported), checks which server certificates a deploy
would renew (dry run), then runs playbooks/deploy.yml in check and diff mode and summarises the changed
results (launcher.drift). Exit 0: nothing would change; 3: something would; 2: invalid input; 1: the
check run failed on a host (or Ansible failed); 130: interrupted.
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
from launcher.pki.deploy_renewal import renew_before_deploy
from launcher.rollout import BATCH_EXTRAVARS
from launcher.runner import RunRequest, RunState, parse_extra_vars, run_playbook
from launcher.runner.summary import EXIT_INVALID, RunSummary, summarize
from launcher.sites import site_of, sites


def _site_map(inventory: Inventory) -> tuple[dict[str, str], list[str]]:
    """host -> site, and the sites in inventory order."""
    return {host.name: site_of(host) for host in inventory.members()}, list(sites(inventory))


def _certificates_due(
    inventory: Inventory, extravars: dict[str, Any], limit: str | None
) -> list[CertificateDue]:
    now = datetime.now(UTC)
    due = renew_before_deploy(inventory, extravars, limit=limit, dry_run=True, quiet=True, now=now)
    return [CertificateDue(d.name, d.not_after.isoformat(), d.describe(now)) for d in due]


def _print_human(report: DriftReport, summary: RunSummary) -> None:
    console = make_console(highlight=False, soft_wrap=True)
    for line in render_lines(report):
        console.print(escape(line))
    if summary.exit_code:
        err = make_console(stderr=True, highlight=False, soft_wrap=True)
        err.print(f"[bold red]the check run failed[/]: {escape(summary.message)}")
        for host in summary.failed_hosts:
            if host.failure:
                err.print(
                    f"  {escape(host.host)}: {escape(host.failure.task)}: {escape(host.failure.message)}"
                )
        if summary.run_dir:
            err.print(f"  run directory: {summary.run_dir}")
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
    certificates = _certificates_due(inventory, extravars, limit) if inventory is not None else []
    report = _validated(inventories, extravars, json_output, limit=limit, tags=None, inventory=inventory)
    loaded = report.inventory
    if loaded is None:  # pragma: no cover - a valid report has its inventory
        sys.exit(EXIT_INVALID)
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
    summary = summarize(
        "diff",
        state.snapshot(),
        runner_status=outcome.status,
        runner_rc=outcome.rc,
        canceled=outcome.canceled,
        run_dir=outcome.run_dir,
        output_tail=outcome.output_tail,
    )
    site_map, site_order = _site_map(loaded)
    drift = build_report(collector.hosts, collector.changes(), site_map, certificates, site_order)
    code = summary.exit_code or drift.exit_code
    if json_output:
        document = drift.to_dict()
        document["exit_code"] = code
        if summary.exit_code:
            document["failed"] = summary.to_dict()
        click.echo(json.dumps(document, sort_keys=True))
    else:
        _print_human(drift, summary)
    sys.exit(code)
