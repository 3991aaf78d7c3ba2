"""`launcher media sample`: the sample photo, video and frames, and the retail scene, used by demos and
tests."""

from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console

from launcher.media import ensure_sample_media


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
