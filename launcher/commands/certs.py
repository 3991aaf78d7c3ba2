"""`launcher certs`: the mTLS PKI of remote deployments (generate, check, revoke, rotate)."""

from __future__ import annotations

import json
import os
import sys
from datetime import timedelta
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from launcher.commands.options import EXTRA_VARS_HELP, extra_vars_option
from launcher.pki import rotate as rotation
from launcher.pki.check import CheckReport, check
from launcher.pki.crl import DEFAULT_CRL_DAYS
from launcher.pki.durations import format_duration, parse_duration
from launcher.pki.generate import GenerateOptions, LeafAction, generate
from launcher.pki.keys import KeyType
from launcher.pki.layout import CERTS_DIR_ENV, Kind, PkiLayout, default_certs_dir, kind_folder
from launcher.pki.lifetimes import (
    DEFAULT_CA_DAYS,
    DEFAULT_CLIENT_DAYS,
    DEFAULT_RENEW_WITHIN,
    DEFAULT_SERVER_DAYS,
    DEFAULT_SERVER_RENEW_WITHIN,
)
from launcher.pki.plan import specs_from_inventory, specs_from_options
from launcher.pki.revoke import REASONS, revoke


def _console() -> Console:
    """Made per command so the terminal width (or $COLUMNS) of this run applies; wide when piped."""
    piped = not sys.stdout.isatty() and "COLUMNS" not in os.environ
    return Console(width=200 if piped else None)


class DurationType(click.ParamType):
    name = "duration"

    def convert(self, value: object, param: click.Parameter | None, ctx: click.Context | None) -> timedelta:
        if isinstance(value, timedelta):
            return value
        try:
            return parse_duration(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


def dir_option(func: click.decorators.FC) -> click.decorators.FC:
    return click.option(
        "--dir",
        "directory",
        type=click.Path(file_okay=False, path_type=Path),
        default=default_certs_dir,
        show_default="$OVMS_LAUNCHER_CERTS_DIR, else certs/ of a checkout, else "
        "~/.local/share/ovms-launcher/certs",
        envvar=CERTS_DIR_ENV,
        help="PKI directory (layout: ovms_common_pki_layout of the collection's roles/ovms_common/defaults).",
    )(func)


def inventory_option(func: click.decorators.FC) -> click.decorators.FC:
    return click.option(
        "-i",
        "--inventory",
        "inventories",
        multiple=True,
        type=click.Path(path_type=Path),
        help="Ansible inventory file or directory (repeatable).",
    )(func)


INVENTORY_EXTRA_VARS_HELP = (
    "With --inventory: the deploy's extra vars, e.g. ovms_monitoring_enabled=true for the monitoring's "
    "certificates: " + EXTRA_VARS_HELP
)


def renew_option(func: click.decorators.FC) -> click.decorators.FC:
    return click.option(
        "--renew-within",
        type=DurationType(),
        default=format_duration(DEFAULT_RENEW_WITHIN),
        show_default=True,
        help="Renewal window of client certificates, CRLs and the CA: what expires within it is "
        "re-issued (generate) or reported (check).",
    )(func)


def server_renew_option(func: click.decorators.FC) -> click.decorators.FC:
    return click.option(
        "--server-renew-within",
        type=DurationType(),
        default=format_duration(DEFAULT_SERVER_RENEW_WITHIN),
        show_default=True,
        help="Renewal window of server certificates (`launcher deploy` renews them within the default one).",
    )(func)


def server_days_option(func: click.decorators.FC) -> click.decorators.FC:
    return click.option(
        "--server-days",
        type=click.IntRange(1),
        default=DEFAULT_SERVER_DAYS,
        show_default=True,
        help="Server certificate validity; one issued for longer is re-issued (docs/pki.md: short-lived).",
    )(func)


def client_days_option(func: click.decorators.FC) -> click.decorators.FC:
    return click.option(
        "--days",
        type=click.IntRange(1),
        default=DEFAULT_CLIENT_DAYS,
        show_default=True,
        help="Client certificate validity.",
    )(func)


def ca_days_option(func: click.decorators.FC) -> click.decorators.FC:
    return click.option(
        "--ca-days",
        type=click.IntRange(1),
        default=DEFAULT_CA_DAYS,
        show_default=True,
        help="New CA validity.",
    )(func)


def _check_windows(*pairs: tuple[str, int, str, timedelta]) -> None:
    """(days option, days, window option, window): a window as long as the life would renew on every run."""
    for days_flag, days, window_flag, window in pairs:
        if window >= timedelta(days=days):
            raise click.BadParameter(
                f"{format_duration(window)} is not shorter than {days_flag} {days}: every run would "
                f"renew again; give a shorter {window_flag} or a longer {days_flag}",
                param_hint=window_flag,
            )


def key_type_option(func: click.decorators.FC) -> click.decorators.FC:
    return click.option(
        "--key-type",
        type=click.Choice([k.value for k in KeyType]),
        default=None,
        help="Key algorithm of new keys [default: ecdsa-p256]; if given, keys of another type are re-issued.",
    )(func)


def _inventory_specs(inventories: tuple[Path, ...], extra_vars: tuple[str, ...]) -> list:
    from launcher.inventory import load_inventory
    from launcher.runner.extravars import parse_extra_vars

    return specs_from_inventory(load_inventory(list(inventories)), parse_extra_vars(extra_vars))


def _print_actions(console: Console, leaves: list[LeafAction]) -> None:
    style = {"created": "green", "reissued": "yellow", "unchanged": "dim"}
    for leaf in leaves:
        why = f" ({'; '.join(leaf.reasons)})" if leaf.reasons and leaf.action != "created" else ""
        where = f"{kind_folder(leaf.kind)}/{leaf.name}"
        console.print(f"  [{style[leaf.action]}]{leaf.action:9}[/] {where}{why}", highlight=False)


@click.group("certs")
def certs() -> None:
    """mTLS certificates for remote gRPC: a CA on this controller, server and client certificates."""


@certs.command("generate")
@dir_option
@inventory_option
@extra_vars_option(INVENTORY_EXTRA_VARS_HELP)
@click.option(
    "--server", "servers", multiple=True, metavar="NAME", help="Server certificate for NAME (repeatable)."
)
@click.option(
    "--san", "sans", multiple=True, metavar="DNS:x|IP:y", help="Extra SAN for every --server (repeatable)."
)
@click.option(
    "--client", "clients", multiple=True, metavar="NAME", help="Client certificate for NAME (repeatable)."
)
@key_type_option
@client_days_option
@server_days_option
@ca_days_option
@click.option(
    "--crl-days", type=click.IntRange(1), default=DEFAULT_CRL_DAYS, show_default=True, help="CRL validity."
)
@renew_option
@server_renew_option
@click.option("--force", is_flag=True, help="Re-issue every requested certificate (the CA is kept).")
def generate_command(
    directory: Path,
    inventories: tuple[Path, ...],
    extra_vars: tuple[str, ...],
    servers: tuple[str, ...],
    sans: tuple[str, ...],
    clients: tuple[str, ...],
    key_type: str | None,
    days: int,
    server_days: int,
    ca_days: int,
    crl_days: int,
    renew_within: timedelta,
    server_renew_within: timedelta,
    force: bool,
) -> None:
    """Create the CA when absent and the certificates of every host; change nothing that is still right."""
    console = _console()
    _check_windows(
        ("--server-days", server_days, "--server-renew-within", server_renew_within),
        ("--days", days, "--renew-within", renew_within),
        ("--crl-days", crl_days, "--renew-within", renew_within),
    )
    specs = _inventory_specs(inventories, extra_vars) if inventories else []
    specs += specs_from_options(servers, sans, clients)
    options = GenerateOptions(
        key_type=KeyType(key_type) if key_type else None,
        days=days,
        ca_days=ca_days,
        crl_days=crl_days,
        renew_within=renew_within,
        force=force,
        server_days=server_days,
        server_renew_within=server_renew_within,
    )
    layout = PkiLayout(directory)
    result = generate(layout, specs, options)
    for fix in result.modes_fixed:
        console.print(f"[yellow]fixed[/] {fix.describe()}", highlight=False)
    if result.ca_created:
        console.print(
            f"[green]created[/] CA {layout.ca_cert} (key {layout.ca_key}, mode 0600)", highlight=False
        )
    _print_actions(console, result.leaves)
    if inventories:
        for kind, name in result.not_wanted:
            console.print(
                f"  [cyan]kept     [/] {kind_folder(kind)}/{name} (not in the inventory)", highlight=False
            )
    for warning in result.warnings:
        console.print(f"[yellow]warning:[/] {warning}", highlight=False)
    if not specs:
        console.print("no hosts given (use --inventory, --server or --client)")
    changed = len(set(result.written) | {fix.path for fix in result.modes_fixed})
    console.print(
        f"{'changed ' + str(changed) + ' file(s)' if changed else 'nothing changed'} in {directory}"
    )


def _cn(rfc4514: str) -> str:
    """The CN of an RFC 4514 name for the table (the JSON report keeps the whole name)."""
    for part in rfc4514.split(","):
        if part.startswith("CN="):
            return part[3:]
    return rfc4514


def _table(report: CheckReport) -> Table:
    table = Table(title=f"certificates in {report.directory}", show_lines=False)
    for column in (
        "kind",
        "name",
        "subject",
        "SANs",
        "issuer",
        "not after",
        "days",
        "key",
        "chain",
        "status",
    ):
        table.add_column(column, overflow="fold", no_wrap=column in {"kind", "name", "not after"})

    def flag(value: bool | None) -> str:
        return {True: "[green]ok[/]", False: "[red]NO[/]", None: "-"}[value]

    for row in report.rows:
        status = "[green]ok[/]" if row.ok else "[red]" + "; ".join(row.problems) + "[/]"
        if row.notes:
            status += " [dim](" + "; ".join(row.notes) + ")[/]"
        table.add_row(
            row.kind,
            row.name,
            _cn(row.subject),
            "\n".join(row.sans),
            _cn(row.issuer),
            (row.not_after or "-")[:10],
            "-" if row.days_left is None else str(row.days_left),
            flag(row.key_match),
            flag(row.chain_valid) + (" [red]REVOKED[/]" if row.revoked else ""),
            status,
        )
    return table


@certs.command("check")
@dir_option
@inventory_option
@extra_vars_option(INVENTORY_EXTRA_VARS_HELP)
@renew_option
@server_renew_option
@server_days_option
@click.option("--json", "as_json", is_flag=True, help="Print a JSON report instead of a table.")
def check_command(
    directory: Path,
    inventories: tuple[Path, ...],
    extra_vars: tuple[str, ...],
    renew_within: timedelta,
    server_renew_within: timedelta,
    server_days: int,
    as_json: bool,
) -> None:
    """Report every certificate; exit 1 when one is missing, invalid, revoked, expired or expiring soon,
    or when a private key is readable by others."""
    console = _console()
    specs = _inventory_specs(inventories, extra_vars) if inventories else None
    report = check(
        PkiLayout(directory),
        specs,
        renew_within=renew_within,
        server_renew_within=server_renew_within,
        server_days=server_days,
    )
    if as_json:
        click.echo(json.dumps(report.as_dict(), indent=2))
    else:
        console.print(_table(report))
        verdict = "[green]all certificates ok[/]" if report.ok else "[red]problems found[/]"
        windows = f"{format_duration(renew_within)}, servers {format_duration(server_renew_within)}"
        console.print(f"{verdict} (renewal window {windows})")
    if not report.ok:
        sys.exit(1)


@certs.command("revoke")
@dir_option
@click.argument("name")
@click.option("--kind", type=click.Choice([k.value for k in Kind]), help="Needed when NAME has both kinds.")
@click.option("--reason", type=click.Choice(list(REASONS)), default="unspecified", show_default=True)
@click.option(
    "--crl-days", type=click.IntRange(1), default=DEFAULT_CRL_DAYS, show_default=True, help="CRL validity."
)
def revoke_command(directory: Path, name: str, kind: str | None, reason: str, crl_days: int) -> None:
    """Add NAME's certificate to the CRL of its CA and move it to revoked/."""
    console = _console()
    result = revoke(
        PkiLayout(directory), name, kind=Kind(kind) if kind else None, reason=reason, crl_days=crl_days
    )
    console.print(
        f"[yellow]revoked[/] {kind_folder(result.kind)}/{result.name} (serial {result.serial:x}); "
        f"certificate kept in {result.archived_to}",
        highlight=False,
    )
    if result.warning is not None:
        console.print(f"[yellow]warning:[/] {result.warning}", highlight=False)
    console.print(
        f"next: deploy {result.crl} to the servers; `launcher certs generate` issues a new certificate "
        "if the host stays in the inventory",
        highlight=False,
    )


@certs.command("rotate")
@dir_option
@click.option("--reissue", "step", flag_value="reissue", help="Step 2: re-issue leaves of the previous CA.")
@click.option("--finish", "step", flag_value="finish", help="Step 3: stop trusting the previous CA.")
@key_type_option
@client_days_option
@server_days_option
@ca_days_option
@click.option("--force", is_flag=True, help="--finish even if leaves of the previous CA remain.")
def rotate_command(
    directory: Path,
    step: str | None,
    key_type: str | None,
    days: int,
    server_days: int,
    ca_days: int,
    force: bool,
) -> None:
    """Replace the CA without an outage: start (new CA, both trusted), --reissue, --finish (docs/pki.md)."""
    console = _console()
    layout = PkiLayout(directory)
    options = GenerateOptions(
        key_type=KeyType(key_type) if key_type else None, days=days, ca_days=ca_days, server_days=server_days
    )
    if step == "reissue":
        result = rotation.reissue(layout, options)
        _print_actions(console, result.leaves)
        console.print("next: deploy the new certificates, then `launcher certs rotate --finish`")
        return
    if step is None:
        result = rotation.start(layout, options)
        console.print(f"[green]new CA[/] {result.new_ca}; ca-bundle.pem and crl.pem now hold both CAs")
        console.print("next: deploy (every host must trust both CAs), then `launcher certs rotate --reissue`")
    else:
        if force and rotation.leaves_of_previous(layout):
            console.print("[yellow]warning:[/] leaves of the previous CA stop working after this step")
        result = rotation.finish(layout, force=force)
        console.print(f"[green]rotation finished[/]; previous CA certificate kept as {result.retired}")
        console.print("next: deploy (ca-bundle.pem and crl.pem now hold only the new CA)")
