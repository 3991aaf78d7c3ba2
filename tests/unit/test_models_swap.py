"""plugins/modules/ovms_models_swap.py: a served version folder is replaced without a moment
in which it is missing (what OVMS, polling its models folder, would take for a removed version)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from testbed.plugins import load_plugin

swap_module = load_plugin("plugins/modules/ovms_models_swap.py")


def version(folder: Path, text: str) -> Path:
    folder.mkdir(parents=True)
    (folder / "model.xml").write_text(text)
    return folder


def test_a_new_version_is_renamed_into_place(tmp_path: Path):
    staging = version(tmp_path / ".staging" / "m-1", "new")
    (tmp_path / "m").mkdir()
    method, previous = swap_module.swap(str(staging), str(tmp_path / "m" / "1"))
    assert (method, previous) == ("rename", None)
    assert (tmp_path / "m" / "1" / "model.xml").read_text() == "new" and not staging.exists()


def test_an_existing_version_is_exchanged_and_the_previous_copy_is_returned(tmp_path: Path):
    served = version(tmp_path / "m" / "1", "old")
    staging = version(tmp_path / ".staging" / "m-1", "new")
    method, previous = swap_module.swap(str(staging), str(served))
    assert method in ("exchange", "renames")
    assert (served / "model.xml").read_text() == "new"
    assert previous is not None and (Path(previous) / "model.xml").read_text() == "old"


def test_the_served_folder_is_never_missing_during_an_exchange(tmp_path: Path):
    served = version(tmp_path / "m" / "1", "v0")
    probes = version(tmp_path / "probe-a", "a"), version(tmp_path / "probe-b", "b")
    if not swap_module.exchange(str(probes[0]), str(probes[1])):
        pytest.skip("this kernel or file system cannot exchange two paths")
    missing: list[int] = []
    done = threading.Event()

    def poll() -> None:  # as OVMS's file system poll would look
        while not done.is_set():
            if not served.is_dir():
                missing.append(1)

    poller = threading.Thread(target=poll)
    poller.start()
    try:
        for round_ in range(300):
            staging = version(tmp_path / ".staging" / f"m-1-{round_}", f"v{round_ + 1}")
            method, previous = swap_module.swap(str(staging), str(served))
            assert method == "exchange" and previous == str(staging)
    finally:
        done.set()
        poller.join()
    assert not missing, f"the version folder was missing {len(missing)} time(s)"
    assert (served / "model.xml").read_text() == "v300"


def test_without_exchange_two_renames_and_a_failure_puts_the_served_copy_back(tmp_path, monkeypatch):
    served = version(tmp_path / "m" / "1", "old")
    staging = version(tmp_path / ".staging" / "m-1", "new")
    (tmp_path / ".staging" / "m-1.old").mkdir()  # left by an interrupted run
    monkeypatch.setattr(swap_module, "exchange", lambda first, second: False)
    method, previous = swap_module.swap(str(staging), str(served))
    assert (method, previous) == ("renames", f"{staging}.old")
    assert (served / "model.xml").read_text() == "new" and (Path(previous) / "model.xml").read_text() == "old"

    again = version(tmp_path / ".staging" / "m-1", "newer")
    real_rename = Path.rename

    def rename(self: Path, target: str) -> Path:
        if self == again:
            raise OSError(28, "No space left on device")
        return real_rename(self, target)

    monkeypatch.setattr(Path, "rename", rename)
    with pytest.raises(OSError):
        swap_module.swap(str(again), str(served))
    assert (served / "model.xml").read_text() == "new"  # still served, not lost
