"""launcher.runner.eventfile writes an event's record as ansible-runner's own event_callback does."""

from __future__ import annotations

import codecs
import json
import stat

from launcher.runner.eventfile import events_dir, write_event

EVENT = {
    "uuid": "0b6f3c7e-5a40-4c1e-9a55-2f0d1c9e7a11",
    "counter": 42,
    "event": "runner_on_ok",
    "stdout": "ok: [host-ä] => caméra ✓",
    "event_data": {
        "host": "host-ä",
        "res": {"changed": False, "list": [1, 2.5, None, True], "nested": {"k": "v"}},
    },
}


def _as_the_runner_writes(path, event):
    # ansible_runner/runner.py Runner.event_callback (ansible-runner 2.4)
    with codecs.open(path, "w", encoding="utf-8") as write_file:
        json.dump(event, write_file)


def test_same_bytes_name_and_mode_as_the_runner(tmp_path):
    folder = tmp_path / "job_events"
    folder.mkdir()
    write_event(folder, EVENT)
    [written] = list(folder.iterdir())
    assert written.name == "42-0b6f3c7e-5a40-4c1e-9a55-2f0d1c9e7a11.json"
    theirs = tmp_path / "theirs.json"
    _as_the_runner_writes(theirs, EVENT)
    assert written.read_bytes() == theirs.read_bytes()
    assert written.read_bytes().isascii()
    assert stat.S_IMODE(written.stat().st_mode) == 0o600


def test_leftover_temporary_file_is_replaced_private(tmp_path):
    folder = tmp_path / "job_events"
    folder.mkdir()
    leftover = folder / "42-0b6f3c7e-5a40-4c1e-9a55-2f0d1c9e7a11.json.tmp"
    leftover.write_text("x" * 10_000)
    leftover.chmod(0o644)
    write_event(folder, EVENT)
    [written] = list(folder.iterdir())
    assert json.loads(written.read_text()) == EVENT
    assert stat.S_IMODE(written.stat().st_mode) == 0o600


def test_events_dir_is_the_runners(tmp_path):
    assert events_dir(tmp_path, "deploy") == tmp_path / "artifacts" / "deploy" / "job_events"


def test_a_missing_folder_is_made(tmp_path):
    folder = events_dir(tmp_path / "run", "deploy")
    write_event(folder, EVENT)
    assert [p.name for p in folder.iterdir()] == ["42-0b6f3c7e-5a40-4c1e-9a55-2f0d1c9e7a11.json"]
    assert stat.S_IMODE(folder.stat().st_mode) & 0o077 == 0
