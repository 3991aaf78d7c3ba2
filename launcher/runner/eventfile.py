"""An event's record in the run directory, written as ansible-runner writes it, in one write.

ansible-runner keeps every event the handler accepts as `artifacts/<ident>/job_events/<counter>-<uuid>.json`
(0600, through a temporary file renamed into place), writing it with `json.dump` to a `codecs` stream:
one encoder call per JSON token, about half of the launcher's CPU on a deploy (bench/notes.md). The
launcher's handler writes the same bytes with one `json.dumps` and tells the runner not to write it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from launcher.runner.rundir import artifacts_dir

JOB_EVENTS = "job_events"


def events_dir(run_dir: Path, ident: str) -> Path:
    """Where ansible-runner keeps the events of the run `ident` of `run_dir`."""
    return artifacts_dir(run_dir, ident) / JOB_EVENTS


def write_event(folder: Path, event: dict[str, Any]) -> None:
    """`event` as `<counter>-<uuid>.json` in `folder`, readable by its owner only, never half-written."""
    final = folder / f"{event['counter']}-{event['uuid']}.json"
    temporary = final.with_name(final.name + ".tmp")
    text = json.dumps(event)  # ensure_ascii: the file is ASCII, as ansible-runner's
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    try:
        handle = os.open(temporary, flags, 0o600)
    except FileNotFoundError:  # the runner makes the folder before its first event; a caller may not
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        handle = os.open(temporary, flags, 0o600)
    os.fchmod(handle, 0o600)  # a leftover temporary file keeps its mode through O_CREAT
    with os.fdopen(handle, "w", encoding="utf-8") as stream:
        stream.write(text)
    temporary.replace(final)
