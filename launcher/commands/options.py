"""Options more than one command module takes, written once."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

EXTRA_VARS_HELP = "key=value, @file.yml or a JSON object (repeatable; later ones win)."


def extra_vars_option(help_text: str = EXTRA_VARS_HELP) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """`-e/--extra-vars VARS` (repeatable) into the parameter `extra_vars`, read with
    launcher.runner.extravars.parse_extra_vars."""

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        return click.option(
            "--extra-vars", "-e", "extra_vars", multiple=True, metavar="VARS", help=help_text
        )(func)

    return decorate
