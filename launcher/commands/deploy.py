"""`launcher deploy | destroy | status | validate`: the playbooks, run through ansible-runner."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from rich.markup import escape

from launcher.commands.options import extra_vars_option
from launcher.console import make_console
from launcher.content import content
from launcher.errors import LauncherError
from launcher.inventory import Inventory, group_list, load_inventory
from launcher.pki.deploy_renewal import renew_before_deploy
from launcher.runner import RunRequest, execute, parse_extra_vars
from launcher.runner.isolation import DEFAULT_NETWORK, ExecutionEnvironment, prepare
from launcher.runner.summary import EXIT_INVALID
from launcher.validate import ValidationReport, validate, validate_for_destroy
from launcher.validate.options import check_run_options

DEFAULT_INVENTORY = content().inventories / "localhost"
PLAYBOOKS = content().playbooks


def _inventory_option(func: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--inventory",
        "-i",
        "inventories",
        multiple=True,
        type=click.Path(path_type=Path),
        help="Inventory file or directory (repeatable). Default: inventories/localhost.",
    )(func)


def _json_option(func: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--json", "json_output", is_flag=True, help="Machine-readable JSON lines instead of the rich UI."
    )(func)


def _run_options(func: Callable[..., Any]) -> Callable[..., Any]:
    for decorator in reversed(
        [
            _inventory_option,
            click.option("--limit", "-l", metavar="PATTERN", help="Only these hosts (Ansible host pattern)."),
            click.option(
                "--tags", "-t", metavar="TAGS", help="Only tasks with these tags (comma separated)."
            ),
            extra_vars_option(),
            click.option("--check", "-C", is_flag=True, help="Dry run: report what would change."),
            click.option("--diff", "-D", is_flag=True, help="Show the changes made to files and templates."),
            click.option("--verbose", "-v", "verbosity", count=True, help="More Ansible output (-vvv)."),
            _json_option,
            click.option(
                "--ee",
                "ee_image",
                metavar="IMAGE",
                help="Run the playbook inside this execution environment image (ansible-runner's container "
                "mode, as AWX does), e.g. ovms-launcher/ee:dev from `launcher images build ee` (docs/ee.md).",
            ),
            click.option(
                "--ee-network",
                metavar="NETWORK",
                default=DEFAULT_NETWORK,
                show_default=True,
                help="With --ee: the Docker network the container joins (the hosts must be reachable).",
            ),
        ]
    ):
        func = decorator(func)
    return func


def _inventories(given: tuple[Path, ...]) -> tuple[Path, ...]:
    paths = given or (DEFAULT_INVENTORY,)
    return tuple(p.expanduser().resolve() for p in paths)


def _report_problems(report: ValidationReport, json_output: bool) -> None:
    if json_output:
        click.echo(json.dumps(report.to_dict(), sort_keys=True))
        return
    console = make_console(stderr=True, soft_wrap=True, highlight=False)
    console.print(f"[bold red]validation failed[/]: {len(report.problems)} problem(s)")
    for problem in report.problems:
        where = f"{problem.file}: {problem.key}" if problem.key else problem.file
        hosts = f" [dim](host {', '.join(problem.hosts)})[/]" if problem.hosts else ""
        console.print(f"[red]✗[/] [bold]{escape(where)}[/]{hosts}: {escape(problem.message)}")
        if problem.fix:
            console.print(f"    fix: {escape(problem.fix)}")
    console.print("[bold red]nothing was run[/]: fix the problems above and try again")


def _report_warnings(report: ValidationReport) -> None:
    console = make_console(stderr=True, soft_wrap=True, highlight=False)
    for warning in report.warnings:
        where = f"{warning.file}: {warning.key}" if warning.key else warning.file
        hosts = f" [dim](host {', '.join(warning.hosts)})[/]" if warning.hosts else ""
        console.print(f"[yellow]![/] [bold]{escape(where)}[/]{hosts}: {escape(warning.message)}")
        if warning.fix:
            console.print(f"    fix: {escape(warning.fix)}")


def _validated(
    inventories: tuple[Path, ...], extravars: dict[str, Any], json_output: bool, **checks: Any
) -> ValidationReport:
    """Exit 2 on any problem; `checks`: validate()'s limit and tags (the certificates are always checked).
    Warnings are shown (in the JSON report with --json) and never stop the run."""
    report = validate(inventories, extravars, certificates=True, **checks)
    if not report.ok:
        _report_problems(report, json_output)
        sys.exit(EXIT_INVALID)
    if not json_output:
        _report_warnings(report)
    return report


def _load_only(inventories: tuple[Path, ...]) -> Inventory:
    """destroy/status need a readable inventory with hosts in the launcher's groups, not valid profiles."""
    inventory = load_inventory(inventories)
    if not inventory.members():
        raise LauncherError(
            f"no host in {group_list()}",
            file=inventory.source_label,
            fix="pass the inventory you deployed with (-i)",
        )
    return inventory


def _checked_options(inventory: Inventory, action: str, options: dict[str, Any]) -> None:
    """destroy/status: exit 2 when --limit names no host of the inventory or --tags an unknown tag,
    as deploy does (Ansible would skip the host silently, or run nothing)."""
    playbook = PLAYBOOKS / f"{action}.yml"
    _, problems = check_run_options(
        inventory, options.get("limit"), options.get("tags"), playbook, content().roles
    )
    if problems:
        _report_problems(ValidationReport(problems, inventory), options["json_output"])
        sys.exit(EXIT_INVALID)


def _forks(inventory: Inventory | None) -> int | None:
    """One fork per host of the launcher's groups (playbooks/vars/groups.yml): every host runs at once (at
    least 1)."""
    if inventory is None:
        return None
    return max(1, len(inventory.members()))


def _execution_environment(
    options: dict[str, Any], inventory: Inventory | None
) -> ExecutionEnvironment | None:
    """With --ee: what the container mounts, after refusing (exit 2) an inventory it cannot run."""
    image = options.get("ee_image")
    if not image:
        return None
    return prepare(
        image, _inventories(options["inventories"]), inventory, network=options.get("ee_network") or "host"
    )


def _run(
    action: str,
    options: dict[str, Any],
    extravars: dict[str, Any],
    *,
    detailed: bool = False,
    inventory: Inventory | None = None,
    ee: ExecutionEnvironment | None = None,
) -> None:
    request = RunRequest(
        action=action,
        playbook=PLAYBOOKS / f"{action}.yml",
        inventories=_inventories(options["inventories"]),
        extravars=extravars,
        limit=options.get("limit"),
        tags=options.get("tags"),
        check=bool(options.get("check")),
        diff=bool(options.get("diff")),
        verbosity=int(options.get("verbosity") or 0),
        forks=_forks(inventory),
        ee=ee if ee is not None else _execution_environment(options, inventory),
    )
    summary = execute(request, json_output=options["json_output"], detailed=detailed)
    sys.exit(summary.exit_code)


@click.command("validate")
@_inventory_option
@extra_vars_option()
@_json_option
def validate_command(inventories: tuple[Path, ...], extra_vars: tuple[str, ...], json_output: bool) -> None:
    """Check inventories, role variables, profiles and models before anything runs (exit 2 on problems)."""
    extravars = parse_extra_vars(extra_vars)
    report = _validated(_inventories(inventories), extravars, json_output)
    if json_output:
        click.echo(json.dumps(report.to_dict(), sort_keys=True))
    else:
        make_console().print(f"[green]valid[/]: {report.describe()}", highlight=False)


@click.command("deploy")
@_run_options
def deploy(**options: Any) -> None:
    """Renew due server certificates, validate, then deploy servers and clients (playbooks/deploy.yml)."""
    extravars = parse_extra_vars(options["extra_vars"])
    inventories = _inventories(options["inventories"])
    try:
        inventory: Inventory | None = load_inventory(inventories)
    except LauncherError:
        inventory = None  # the validation below reports it, naming the file
    # --ee: an inventory it cannot run is refused (exit 2) before anything is written
    ee = _execution_environment(options, inventory) if inventory is not None else None
    if inventory is not None:
        renew_before_deploy(
            inventory,
            extravars,
            limit=options.get("limit"),
            dry_run=bool(options.get("check")),
            json_output=options["json_output"],
        )
    report = _validated(
        inventories,
        extravars,
        options["json_output"],
        limit=options.get("limit"),
        tags=options.get("tags"),
        inventory=inventory,
    )
    if not options["json_output"]:
        make_console().print(f"[green]valid[/]: {report.describe()}", highlight=False)
    _run("deploy", options, extravars, inventory=report.inventory, ee=ee)


def _stdin_is_tty() -> bool:
    return sys.stdin.isatty()


@click.command("destroy")
@_run_options
@click.option("--purge", is_flag=True, help="Also delete models, results and data volumes on the hosts.")
@click.option(
    "--yes", "-y", is_flag=True, help="Do not ask for confirmation (needed for --purge without a TTY)."
)
def destroy(purge: bool, yes: bool, **options: Any) -> None:
    """Remove our containers and networks (playbooks/destroy.yml); keeps data unless --purge."""
    extravars = parse_extra_vars(options["extra_vars"])
    inventories = _inventories(options["inventories"])
    inventory = _load_only(inventories)
    _checked_options(inventory, "destroy", options)
    problems = validate_for_destroy(inventory, extravars)
    if problems:
        _report_problems(ValidationReport(problems, inventory), options["json_output"])
        sys.exit(EXIT_INVALID)
    if purge:
        if not yes:
            if not _stdin_is_tty():
                raise LauncherError(
                    "--purge deletes models and results on every host and needs confirmation",
                    key="--purge",
                    fix="add --yes to confirm without a terminal",
                )
            if not click.confirm(
                "Delete the models, results and data volumes on every host as well?", default=False
            ):
                raise LauncherError(
                    "not confirmed: nothing was run", key="--purge", fix="answer y, or pass --yes"
                )
        extravars["ovms_destroy_purge"] = True
    _run("destroy", options, extravars, inventory=inventory)


@click.command("status")
@_run_options
def status(**options: Any) -> None:
    """Containers, model states and client stats per host (playbooks/status.yml)."""
    extravars = parse_extra_vars(options["extra_vars"])
    inventory = _load_only(_inventories(options["inventories"]))
    _checked_options(inventory, "status", options)
    _run("status", options, extravars, detailed=True, inventory=inventory)
