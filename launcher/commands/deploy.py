"""`launcher deploy | destroy | status | validate`: the playbooks, run through ansible-runner."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from rich.markup import escape

from launcher.commands.options import default_forks, extra_vars_option, forks_option
from launcher.console import make_console
from launcher.content import content
from launcher.errors import LauncherError
from launcher.inventory import Inventory, group_list, load_inventory
from launcher.pki.deploy_renewal import renew_before_deploy
from launcher.rollout import BATCH_EXTRAVARS, Batch, Rollout, Verdict, plan_rollout, playbook_extravars
from launcher.runner import RunRequest, RunSummary, execute, parse_extra_vars
from launcher.runner.isolation import DEFAULT_NETWORK, ExecutionEnvironment, prepare
from launcher.runner.session import json_line
from launcher.runner.summary import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_INVALID, EXIT_OK
from launcher.validate import ValidationReport, validate, validate_for_destroy
from launcher.validate.options import check_limit, check_run_options
from launcher.validate.problems import from_error

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
            forks_option(),
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


def _forks(inventory: Inventory | None, given: int | None = None) -> int | None:
    """`--forks N`, else one fork per host of the launcher's groups (playbooks/vars/groups.yml) up to
    ansible.cfg's forks (launcher.commands.options.default_forks); None (ansible.cfg's) without an
    inventory."""
    if inventory is None:
        return given
    return default_forks(len(inventory.members()), given)


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
        forks=_forks(inventory, options.get("forks")),
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
    """Renew due server certificates, validate, then deploy servers and clients (playbooks/deploy.yml).

    With sites (ovms_site) and ovms_deploy_serial set, a roll-out by site: one run per batch of sites,
    each verified before the next starts; ovms_deploy_max_fail_percentage stops it."""
    extravars = parse_extra_vars(options["extra_vars"])
    inventories = _inventories(options["inventories"])
    try:
        inventory: Inventory | None = load_inventory(inventories)
    except LauncherError:
        inventory = None  # the validation below reports it, naming the file
    # the roll-out (or the ordinary run's playbook-level variables) before anything is written: a
    # problem there exits 2 before any certificate is renewed
    rollout, run_extravars = (None, extravars)
    if inventory is not None:
        rollout, run_extravars = _planned(inventory, extravars, options)
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
    if rollout is None:
        _run("deploy", options, run_extravars, inventory=report.inventory, ee=ee)
    else:
        sys.exit(run_rollout(rollout, options, extravars, ee=ee))


def _planned(
    inventory: Inventory, extravars: dict[str, Any], options: dict[str, Any]
) -> tuple[Rollout | None, dict[str, Any]]:
    """The roll-out by site (None: one ordinary run) and the ordinary run's extra vars (the inventory's
    ovms_deploy_serial / ovms_deploy_max_fail_percentage added: launcher.rollout.playbook_extravars);
    exit 2 on a problem (an unknown --limit term is left to the validation, which names it)."""
    try:
        selected, _ = check_limit(inventory, options.get("limit"))
        rollout = plan_rollout(inventory, extravars, selected)
        added = playbook_extravars(inventory, extravars) if rollout is None else {}
    except LauncherError as exc:
        problem = from_error(exc, default_file=inventory.source_label)
        _report_problems(ValidationReport([problem], inventory), options["json_output"])
        sys.exit(EXIT_INVALID)
    return rollout, {**extravars, **added}


def _batch_request(
    batch: Batch, options: dict[str, Any], extravars: dict[str, Any], ee: ExecutionEnvironment | None
) -> RunRequest:
    """One batch's run: its hosts only (already within --limit), all at once (rollout.BATCH_EXTRAVARS)."""
    return RunRequest(
        action="deploy",
        playbook=PLAYBOOKS / "deploy.yml",
        inventories=_inventories(options["inventories"]),
        extravars={**extravars, **BATCH_EXTRAVARS},
        limit_hosts=batch.hosts,
        tags=options.get("tags"),
        check=bool(options.get("check")),
        diff=bool(options.get("diff")),
        verbosity=int(options.get("verbosity") or 0),
        forks=default_forks(len(batch.hosts), options.get("forks")),
        ee=ee,
    )


def _batch_line(batch: Batch, total: int) -> str:
    return f"batch {batch.number}/{total}: {batch.describe()}"


def run_rollout(
    rollout: Rollout,
    options: dict[str, Any],
    extravars: dict[str, Any],
    *,
    ee: ExecutionEnvironment | None = None,
    run: Callable[..., RunSummary] | None = None,
) -> int:
    """Run the batches in order (`run`: launcher.runner.execute), stop per the roll-out's rule; the exit
    code: 0 when every batch ran without a failure, the failed run's (1, 130) when stopped, else 1.
    Ctrl+C between batches (outside a run, which handles its own) ends it as well: exit 130, the
    batches not started reported as not run."""
    run = run or execute
    json_output = bool(options["json_output"])
    console = make_console(soft_wrap=True, highlight=False)
    total = len(rollout.batches)
    failed_batches: list[tuple[Batch, tuple[str, ...]]] = []
    started = 0  # batches whose run started

    def finish(not_run: tuple[Batch, ...], reason: str, code: int, stopped: bool) -> int:
        _report_end(console, json_output, total, started, failed_batches, not_run, reason, code, stopped)
        return code

    try:
        for index, batch in enumerate(rollout.batches):
            if json_output:
                click.echo(json_line({"type": "batch", "state": "start", "of": total, **batch.to_dict()}))
            else:
                console.print(f"[bold]{escape(_batch_line(batch, total))}[/]")
            started = index + 1
            summary = run(_batch_request(batch, options, extravars, ee), json_output=json_output)
            verdict = rollout.verdict(batch, summary)
            if verdict.failed:
                failed_batches.append((batch, verdict.failed))
            _report_batch(console, json_output, batch, total, summary, verdict)
            if verdict.stop:
                not_run = rollout.batches[index + 1 :]
                # the last batch failing ends a roll-out that ran every batch: completed, with failures
                stopped = bool(not_run) or summary.status not in ("successful", "failed")
                return finish(not_run, verdict.reason, summary.exit_code or EXIT_FAILED, stopped)
    except KeyboardInterrupt:
        return finish(rollout.batches[started:], "interrupted", EXIT_INTERRUPTED, True)
    # every batch ran (started == total)
    return finish((), "", EXIT_FAILED if failed_batches else EXIT_OK, False)


def _report_batch(
    console: Any, json_output: bool, batch: Batch, total: int, summary: RunSummary, verdict: Verdict
) -> None:
    """A batch's end: its failed (and not verified) sites, or with --json its `done` line."""
    if json_output:
        line = {
            "type": "batch",
            "state": "done",
            "of": total,
            **batch.to_dict(),
            "status": summary.status,
            "exit_code": summary.exit_code,
            "failed": list(verdict.failed),
            "unverified": list(verdict.unverified),
            "stop": verdict.stop,
            "reason": verdict.reason,
            "run_dir": summary.run_dir,
        }
        click.echo(json_line(line))
    elif verdict.failed:
        what = "hosts" if batch.unsited else "sites"
        unverified = f" (not verified: {', '.join(verdict.unverified)})" if verdict.unverified else ""
        console.print(
            f"[red]batch {batch.number}/{total}: failed {what} {escape(', '.join(verdict.failed))}"
            f"{escape(unverified)}[/]"
        )


def _report_end(
    console: Any,
    json_output: bool,
    total: int,
    ran: int,
    failed_batches: list[tuple[Batch, tuple[str, ...]]],
    not_run: tuple[Batch, ...],
    reason: str,
    code: int,
    stopped: bool,
) -> None:
    """The roll-out's last line(s): completed (with failures) or stopped, the failed sites, the batches
    not run; with --json the final `rollout` record."""
    if json_output:
        end = {
            "type": "rollout",
            "status": "stopped" if stopped else "completed",
            "exit_code": code,
            "batches": total,
            "batches_run": ran,
            "reason": reason,
            "failed": {str(b.number): list(failed) for b, failed in failed_batches},
            "not_run": [b.to_dict() for b in not_run],
        }
        click.echo(json_line(end))
        return
    failed = ", ".join(f for _, names in failed_batches for f in names)
    if stopped:
        console.print(f"[bold red]roll-out stopped after batch {ran}/{total}[/]: {escape(reason)}")
        for batch in not_run:
            console.print(f"  not run: {escape(_batch_line(batch, total))}")
    elif failed_batches:
        why = f" ({escape(reason)})" if reason else ""
        done = f"{total} batch(es), failed: {escape(failed)}{why}"
        console.print(f"[bold yellow]roll-out completed with failures[/]: {done}")
    else:
        console.print(f"[bold green]roll-out completed[/]: {total} batch(es)")


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
