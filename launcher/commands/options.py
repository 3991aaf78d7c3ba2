"""Options more than one command module takes, written once."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
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


# ansible-core's own default forks, when ansible.cfg sets none
ANSIBLE_DEFAULT_FORKS = 5
FORKS_HELP = (
    "Hosts Ansible works on at once (at least 1). Default: as many as the run's hosts, at most the "
    "launcher's ansible.cfg forks."
)


def forks_option(help_text: str = FORKS_HELP) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """`--forks N` (N >= 1, else a usage error, exit 2) into the parameter `forks` (None: default_forks)."""

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        return click.option(
            "--forks", "forks", type=click.IntRange(min=1), default=None, metavar="N", help=help_text
        )(func)

    return decorate


@cache
def configured_forks() -> int:
    """`forks` of the launcher's ansible.cfg ([defaults]), the most a run starts by default; ansible-core's
    own default (5) when the file sets none."""
    import configparser

    from launcher.content import content
    from launcher.errors import LauncherError

    path = content().ansible_cfg
    parser = configparser.RawConfigParser()
    try:
        parser.read(path, encoding="utf-8")
        value = parser.getint("defaults", "forks", fallback=ANSIBLE_DEFAULT_FORKS)
    except (configparser.Error, ValueError) as exc:
        raise LauncherError(f"cannot read forks: {exc}", file=path, key="forks") from exc
    return max(1, value)


def default_forks(hosts: int, given: int | None = None) -> int:
    """The forks of a run over `hosts` hosts: `--forks N` when given, else as many as hosts (at least 1)
    up to configured_forks()."""
    if given is not None:
        return given
    return max(1, min(hosts, configured_forks()))
