"""Subcommand families of the launcher; each module exposes one click command or group.

COMMANDS is the one list of the launcher's subcommands: the CLI (launcher/cli.py) lists them from it
without importing their modules, and imports a module only when its command runs or shows its own
--help. Nothing here may import a command module: `launcher --help` must stay fast.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import click


@dataclass(frozen=True)
class CommandSpec:
    """A subcommand known by name before its module is imported.

    `target` is "module:attribute" of the click command; `short_help` is the first sentence of that
    command's docstring, shown by `launcher --help` (tests/unit/test_cli_startup.py checks they agree).
    """

    name: str
    target: str
    short_help: str

    def load(self) -> click.Command:
        """Import the command's module and return its click command."""
        import click

        module_name, _, attribute = self.target.partition(":")
        command = getattr(importlib.import_module(module_name), attribute)
        if not isinstance(command, click.Command) or command.name != self.name:
            raise TypeError(f"{self.target} is not the click command {self.name!r}")
        return command


COMMANDS: tuple[CommandSpec, ...] = (
    CommandSpec(
        "certs",
        "launcher.commands.certs:certs",
        "mTLS certificates for remote gRPC: a CA on this controller, server and client certificates.",
    ),
    CommandSpec(
        "deploy",
        "launcher.commands.deploy:deploy",
        "Renew due server certificates, validate, then deploy servers and clients (playbooks/deploy.yml).",
    ),
    CommandSpec(
        "destroy",
        "launcher.commands.deploy:destroy",
        "Remove our containers and networks (playbooks/destroy.yml); keeps data unless --purge.",
    ),
    CommandSpec(
        "diff",
        "launcher.commands.diff:diff",
        "What a deploy would change, per site and host (a check-mode run; exit 3 when anything would).",
    ),
    CommandSpec(
        "images",
        "launcher.commands.images:images",
        "Build, save and load the project's container images (works offline).",
    ),
    CommandSpec("media", "launcher.commands.media:media", "Sample media for the camera clients."),
    CommandSpec(
        "models",
        "launcher.commands.models:models",
        "Prepare OpenVINO IR models in the controller's model repository.",
    ),
    CommandSpec(
        "status",
        "launcher.commands.deploy:status",
        "Containers, model states and client stats per host (playbooks/status.yml).",
    ),
    CommandSpec(
        "validate",
        "launcher.commands.deploy:validate_command",
        "Check inventories, role variables, profiles and models before anything runs (exit 2 on problems).",
    ),
)
