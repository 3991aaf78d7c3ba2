"""Rich consoles of the launcher: full width in a terminal, a readable fixed width in logs and pipes."""

from __future__ import annotations

import os
import sys

from rich.console import Console

PIPED_WIDTH = 160


def make_console(*, stderr: bool = False, **kwargs: object) -> Console:
    """A console that does not squeeze tables into 80 columns when output goes to a file or CI log."""
    stream = sys.stderr if stderr else sys.stdout
    width = None
    if not stream.isatty():
        width = int(os.environ.get("COLUMNS", PIPED_WIDTH))
    return Console(stderr=stderr, width=width, **kwargs)  # type: ignore[arg-type]
