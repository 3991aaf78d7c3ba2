"""`launcher models prepare|list`: the controller's OVMS model repository."""

from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from launcher.models import model_states, prepare_models, repository_dir, version_files

_manifest_option = click.option(
    "--manifest",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Models manifest (default: models/manifest.yaml of the launcher's collection).",
)

_STATE_STYLE = {"ready": "green", "missing": "yellow", "stale": "yellow", "corrupt": "red"}


@click.group("models")
def models() -> None:
    """Prepare OpenVINO IR models in the controller's model repository."""


@models.command("prepare")
@_manifest_option
@click.argument("names", nargs=-1)
def prepare(manifest: Path | None, names: tuple[str, ...]) -> None:
    """Fetch, verify and convert the manifest's models (all, or NAMES) to OpenVINO IR (or place
    ONNX models marked `serve: as_is` unchanged), with their client files."""
    console = Console(stderr=True, soft_wrap=True)
    prepared = prepare_models(manifest, list(names) or None, console=console)
    changed = sum(1 for model in prepared if model.changed)
    console.print(
        f"[bold]{len(prepared)} model(s) in {repository_dir()}[/] ({changed} prepared, "
        f"{len(prepared) - changed} up to date)",
        highlight=False,
    )


@models.command("list")
@_manifest_option
def list_models(manifest: Path | None) -> None:
    """Show the manifest's models and their state in the cache."""
    table = Table(title=f"models in {repository_dir()}", title_justify="left")
    for column in ("name", "version", "format", "source", "files", "state"):
        table.add_column(column)
    for entry, _path, state in model_states(manifest):
        source = entry.source.describe()
        if "pypi" in source:
            text = f"pypi {source['pypi']['package']}=={source['pypi']['version']}"
        else:
            text = next(iter(source.values()))
        style = _STATE_STYLE[state]
        served = f"{entry.format} as-is" if entry.as_is else entry.format
        files = ", ".join(version_files(entry))
        table.add_row(entry.name, str(entry.version), served, text, files, f"[{style}]{state}[/]")
    Console().print(table)
