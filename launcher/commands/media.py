"""`launcher media sample`: the sample photo, video and frames, and the retail scene, used by demos and
tests; `launcher media manifest`: the media.json of a folder of the operator's own media."""

from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console

from launcher.media import MARKER_NAME, ensure_sample_media, write_manifest


@click.group("media")
def media() -> None:
    """Sample media for the camera clients."""


@media.command("sample")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder for the files (default: the controller cache's media/ folder).",
)
def sample(out: Path | None) -> None:
    """Make astronaut.png, sample.mp4, frames/*.jpg and the retail scene (a price label and an EAN-13
    barcode over the photo): retail.mp4 and retail_frames/*.jpg. Does nothing when they are up to
    date."""
    made = ensure_sample_media(out, console=Console(stderr=True, soft_wrap=True))
    click.echo(
        f"photo:  {made.photo}\nvideo:  {made.video}\nframes: {made.frames_dir}\n"
        f"retail video:  {made.retail_video}\nretail frames: {made.retail_frames_dir}"
    )


@media.command("manifest")
@click.argument("folder", type=click.Path(file_okay=False, exists=True, path_type=Path))
def manifest(folder: Path) -> None:
    """Write FOLDER/media.json: every regular file in FOLDER with its sha256. The client role ships only
    the files media.json lists (ovms_client_media_dir); links and hard links are refused."""
    files = write_manifest(folder)
    click.echo(f"{folder / MARKER_NAME}: {len(files)} files")
