"""`launcher images build|save|load|list`."""

from __future__ import annotations

from pathlib import Path

import click
from rich.table import Table

from launcher.console import make_console
from launcher.images import IMAGES, archive, build_images, docker_cli, select_images
from launcher.images.build import FINGERPRINT_LABEL

console = make_console(stderr=True, highlight=False)


def _say(message: str) -> None:
    console.print(message)


@click.group("images")
def images() -> None:
    """Build, save and load the project's container images (works offline)."""


@images.command("build")
@click.argument("names", nargs=-1)
@click.option(
    "--offline/--online",
    default=None,
    help="--offline: build from a local Debian base made with debootstrap and a host wheelhouse. "
    "--online: require the public base images. Default: online when the registry answers, else offline.",
)
@click.option("--force", is_flag=True, help="Rebuild even when nothing changed.")
def build_cmd(names: tuple[str, ...], offline: bool | None, force: bool) -> None:
    """Build NAMES (default: all images); unchanged images are skipped in seconds."""
    specs = select_images(names)
    for spec in IMAGES.values():
        if not names and not spec.available:
            _say(f"{spec.tag}: skipped, it builds only from a source checkout ({spec.checkout_only})")
    with console.status("building images…") as status:
        results = build_images(
            specs, offline=offline, force=force, say=_say, progress=lambda m: status.update(m)
        )
    table = Table("image", "base", "result", "seconds")
    for r in results:
        table.add_row(r.tag, r.base, "built" if r.built else "up to date", f"{r.seconds:.1f}")
    console.print(table)


@images.command("save")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.argument("names", nargs=-1)
@click.option(
    "--image",
    "references",
    multiple=True,
    metavar="REF",
    help="Also save this local image (any reference, e.g. the real openvino/model_server:TAG); repeatable. "
    "With --image and no NAMES, only the --image images are saved.",
)
def save_cmd(directory: Path, names: tuple[str, ...], references: tuple[str, ...]) -> None:
    """Write image archives and images.json (tag, image ID, sha256 and size of each archive) to DIRECTORY
    for hosts without a registry: `launcher images load DIRECTORY` there, or a deploy with
    -e prechecks_images_ship=true -e prechecks_images_archive_dir=DIRECTORY ships what each host lacks.
    NAMES: project images (default: every one, unless --image is given)."""
    docker_cli.ensure_engine()
    specs = select_images(names) if names or not references else []
    archive.save(specs, directory, _say, references)
    console.print(f"archives in {directory}")


@images.command("load")
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("names", nargs=-1)
def load_cmd(directory: Path, names: tuple[str, ...]) -> None:
    """Verify and load the archives written by `images save`."""
    docker_cli.ensure_engine()
    loaded = archive.load(directory, _say, list(names) or None)
    console.print(f"loaded {len(loaded)} image(s)")


@images.command("list")
def list_cmd() -> None:
    """Show each project image this launcher can build (the execution environment too) and whether it is
    built."""
    docker_cli.ensure_engine()
    table = Table("name", "tag", "present", "fingerprint")
    for spec in (spec for spec in IMAGES.values() if spec.available):
        labels = docker_cli.image_labels(spec.tag)
        present = bool(docker_cli.image_id(spec.tag))
        table.add_row(spec.name, spec.tag, "yes" if present else "no", labels.get(FINGERPRINT_LABEL, "")[:12])
    console.print(table)
