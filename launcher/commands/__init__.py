"""Subcommand families of the launcher; each module exposes one click command or group."""

from __future__ import annotations

import click

COMMANDS: list[click.Command] = []
