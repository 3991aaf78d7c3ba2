"""The `launcher` command line: one group, each subcommand family in launcher/commands/."""

from __future__ import annotations

import sys

import click
from rich.console import Console

from launcher import __version__
from launcher.errors import LauncherError

err_console = Console(stderr=True)


class _Group(click.Group):
    """Turns LauncherError into a readable message and its exit code instead of a traceback."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except LauncherError as exc:
            err_console.print(f"[bold red]error:[/] {exc.render()}", highlight=False, markup=True)
            sys.exit(exc.exit_code)
        except KeyboardInterrupt:
            err_console.print("[yellow]interrupted[/]")
            sys.exit(130)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="launcher")
def main() -> None:
    """Deploy OpenVINO Model Server and its camera clients with Ansible."""


def _register() -> None:
    from launcher.commands import COMMANDS

    for command in COMMANDS:
        main.add_command(command)


_register()
