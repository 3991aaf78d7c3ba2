"""Subcommand families of the launcher; each module exposes one click command or group."""

from __future__ import annotations

import click

from launcher.commands.certs import certs
from launcher.commands.deploy import deploy, destroy, status, validate_command
from launcher.commands.images import images
from launcher.commands.media import media
from launcher.commands.models import models

COMMANDS: list[click.Command] = []
COMMANDS.append(images)
COMMANDS.append(certs)
COMMANDS.append(models)
COMMANDS.append(media)
COMMANDS.extend([deploy, destroy, status, validate_command])
