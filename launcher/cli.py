"""The `launcher` command line: one group, each subcommand family in launcher/commands/."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import TYPE_CHECKING

import click

from launcher import __version__
from launcher.commands import COMMANDS, CommandSpec
from launcher.errors import LauncherError

if TYPE_CHECKING:
    from rich.console import Console


def _err_console() -> Console:
    """Imported on the error path only: rich is as slow to import as the rest of `launcher --help`."""
    from rich.console import Console

    return Console(stderr=True)


class LazyGroup(click.Group):
    """A group whose subcommands are named in advance and imported on first use.

    `launcher --help` lists the subcommands from their specs (name and short help) without importing
    a module; a subcommand's module is imported when it is invoked, asked for its own --help or
    completed. Commands added with add_command() work as in click.Group.
    """

    def __init__(self, *args: object, lazy_commands: Iterable[CommandSpec] = (), **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.lazy_commands = {spec.name: spec for spec in lazy_commands}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.lazy_commands, *self.commands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = self.commands.get(cmd_name)
        if command is None and cmd_name in self.lazy_commands:
            command = self.lazy_commands[cmd_name].load()
            self.add_command(command, cmd_name)
        return command

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        try:
            return super().resolve_command(ctx, args)
        except click.UsageError as exc:
            # click.exceptions.NoSuchCommand (click 8.4+) suggests from the loaded commands only
            command_name = getattr(exc, "command_name", None)
            if command_name is None:
                raise
            raise type(exc)(command_name, possibilities=self.list_commands(ctx), ctx=ctx) from None

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """click.Group's listing, with a stand-in made from the spec for each command not loaded."""
        commands: list[tuple[str, click.Command]] = []
        for name in self.list_commands(ctx):
            command = self.commands.get(name)
            if command is None:
                command = click.Command(name, help=self.lazy_commands[name].short_help)
            if not command.hidden:
                commands.append((name, command))
        if commands:
            limit = formatter.width - 6 - max(len(name) for name, _ in commands)
            with formatter.section("Commands"):
                formatter.write_dl([(name, command.get_short_help_str(limit)) for name, command in commands])


class _Group(LazyGroup):
    """Turns LauncherError into a readable message and its exit code instead of a traceback."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except LauncherError as exc:
            _err_console().print(f"[bold red]error:[/] {exc.render()}", highlight=False, markup=True)
            sys.exit(exc.exit_code)
        except KeyboardInterrupt:
            _err_console().print("[yellow]interrupted[/]")
            sys.exit(130)


@click.group(
    cls=_Group,
    lazy_commands=COMMANDS,
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.version_option(__version__, prog_name="launcher")
def main() -> None:
    """Deploy OpenVINO Model Server and its camera clients with Ansible."""
