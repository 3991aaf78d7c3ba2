"""Bounded disk for months of running (issue 22): detections.jsonl and stats.jsonl rotate by size to
`<file>.1` … `<file>.<keep>`, whole lines only; `status` (module ovms_client_status, by the rules of
module_utils ovms_results) reads the current file and the newest rotated one when the current one has no
whole line yet."""

from __future__ import annotations

import copy
import json
import logging
import os
import threading
from pathlib import Path

import pytest
import yaml

from client.errors import ClientError
from client.profile import load_profile
from client.results import JsonLines
from testbed.plugins import load_plugin

pytestmark = [pytest.mark.observability]

TAIL = load_plugin("plugins/module_utils/ovms_results.py")
PROFILES = Path(__file__).resolve().parents[2] / "profiles"


def _family(path: Path) -> list[Path]:
    """The file and every `<file>.<n>` beside it, newest first."""
    rotated = sorted(
        (p for p in path.parent.glob(f"{path.name}.*") if p.suffix[1:].isdigit()),
        key=lambda p: int(p.suffix[1:]),
    )
    return [path, *rotated] if path.exists() else rotated


def _records(files: list[Path]) -> list[dict]:
    """Every record of the files, oldest first; each line must be whole JSON."""
    records = []
    for path in reversed(files):
        data = path.read_bytes()
        assert not data or data.endswith(b"\n"), f"{path} ends inside a record"
        for line in data.decode("utf-8").splitlines():
            records.append(json.loads(line))
    return records


def test_results_written_past_the_limit_keep_disk_bounded_and_every_record_whole(tmp_path):
    path = tmp_path / "detections.jsonl"
    limit, keep, writers, each = 16_384, 3, 8, 600
    results = JsonLines(path, rotate_bytes=limit, keep=keep)

    def write(writer: int) -> None:
        for seq in range(each):
            size = (writer * 37 + seq * 101) % 700  # records of 40 to 750 bytes, in no order
            results.write({"writer": writer, "seq": seq, "pad": "é" * (size // 2), "size": size})

    threads = [threading.Thread(target=write, args=(n,)) for n in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    results.close()

    files = _family(path)
    assert [p.name for p in files] == [
        "detections.jsonl",
        *(f"detections.jsonl.{n}" for n in range(1, keep + 1)),
    ]
    longest = max(len(line) + 1 for p in files for line in p.read_bytes().splitlines())
    assert sum(p.stat().st_size for p in files) <= (keep + 1) * limit + longest
    assert all(p.stat().st_size <= limit for p in files)  # no record is longer than the limit
    written = writers * each * 300  # far more than was kept: the oldest files were dropped
    assert sum(p.stat().st_size for p in files) < written
    records = _records(files)
    for record in records:  # whole: the padding as written
        assert record["pad"] == "é" * (record["size"] // 2)
    # what is kept is the newest records: of each writer, an unbroken run up to its last
    for writer in range(writers):
        seqs = [r["seq"] for r in records if r["writer"] == writer]
        assert seqs == list(range(each - len(seqs), each)), writer


def test_a_record_longer_than_the_limit_starts_a_file_of_its_own(tmp_path):
    path = tmp_path / "stats.jsonl"
    results = JsonLines(path, rotate_bytes=100, keep=2)
    results.write({"n": 1})
    results.write({"n": 2, "big": "x" * 300})
    assert _records([path]) == [{"n": 2, "big": "x" * 300}]
    assert _records([path.with_name("stats.jsonl.1")]) == [{"n": 1}]
    results.write({"n": 3})
    results.close()
    assert [[r["n"] for r in _records([p])] for p in _family(path)] == [[3], [2], [1]]


def test_a_restarted_client_continues_the_file_and_rotates_it_when_full(tmp_path):
    path = tmp_path / "detections.jsonl"
    path.write_text("".join(json.dumps({"old": n}) + "\n" for n in range(50)), encoding="utf-8")
    results = JsonLines(path, rotate_bytes=10_000, keep=2)
    results.write({"new": 0})
    assert [r.get("old", "new") for r in _records([path])] == [*range(50), "new"]  # appended, not rotated
    results.close()
    results = JsonLines(path, rotate_bytes=200, keep=2)  # a smaller limit than the file already holds
    results.write({"new": 1})
    results.close()
    assert _records([path]) == [{"new": 1}]
    assert len(_records([path.with_name("detections.jsonl.1")])) == 51


def test_rotated_files_beyond_keep_are_removed(tmp_path):
    path = tmp_path / "stats.jsonl"
    for n in (1, 2, 3, 7):  # a larger rotate_keep before
        path.with_name(f"stats.jsonl.{n}").write_text(json.dumps({"from": n}) + "\n", encoding="utf-8")
    other = tmp_path / "stats.jsonl.bak"
    other.write_text("kept\n", encoding="utf-8")
    results = JsonLines(path, rotate_bytes=30, keep=2)
    results.write({"a": 1})
    results.write({"a": 2, "pad": "y" * 30})
    results.close()
    assert [p.name for p in _family(path)] == ["stats.jsonl", "stats.jsonl.1", "stats.jsonl.2"]
    assert _records([path.with_name("stats.jsonl.2")]) == [{"from": 1}]  # the old .1 moved up
    assert other.read_text() == "kept\n"  # not one of its rotations


def test_a_failed_rotation_is_logged_and_no_record_is_lost(tmp_path, caplog, monkeypatch):
    path = tmp_path / "detections.jsonl"
    real_replace = Path.replace

    def refused(self: Path, target: Path) -> Path:  # a read-only folder (the tests run as root)
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "replace", refused)
    results = JsonLines(path, rotate_bytes=100, keep=1)
    with caplog.at_level(logging.WARNING, logger="client.results"):
        for n in range(20):
            results.write({"n": n, "pad": "z" * 20})
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings and all(str(path) in w and "cannot rotate" in w for w in warnings)
    assert len(warnings) < 20  # retried once per limit's worth of records, not at every one
    assert [r["n"] for r in _records([path])] == list(range(20))
    # once the folder is writable again, the next attempt rotates
    monkeypatch.setattr(Path, "replace", real_replace)
    for n in range(20, 30):
        results.write({"n": n, "pad": "z" * 20})
    results.close()
    assert path.with_name("detections.jsonl.1").is_file()
    assert [r["n"] for r in _records(_family(path))][-1] == 29
    assert path.stat().st_size <= 100


def _write_many(results: JsonLines, count: int, start: int = 0) -> None:
    for n in range(start, start + count):
        results.write({"n": n, "pad": "z" * 20})  # 40-odd bytes a record


def test_a_folder_named_like_the_first_rotated_file_drops_full_files_and_keeps_the_disk_bounded(
    tmp_path, caplog
):
    """Issue 22: a folder `<file>.1` made every rotation fail, and the file grew without bound."""
    path = tmp_path / "detections.jsonl"
    blocker = path.with_name("detections.jsonl.1")
    blocker.mkdir()
    (blocker / "inside").write_text("x", encoding="utf-8")
    results = JsonLines(path, rotate_bytes=100, keep=3)
    with caplog.at_level(logging.WARNING, logger="client.results"):
        _write_many(results, 200)
    assert path.stat().st_size <= 100  # bounded: the full files' records were dropped
    assert [r["n"] for r in _records([path])][-1] == 199  # the newest are there, each whole
    assert (blocker / "inside").read_text() == "x"  # the folder is never touched
    assert not path.with_name("detections.jsonl.2").exists()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings and all(str(blocker) in w and "is not a regular file" in w for w in warnings)
    # once the folder is gone, the rotation goes on as usual
    (blocker / "inside").unlink()
    blocker.rmdir()
    _write_many(results, 20, start=200)
    results.close()
    assert blocker.is_file() and path.with_name("detections.jsonl.2").is_file()
    assert [r["n"] for r in _records(_family(path))][-1] == 219


def test_a_folder_further_up_the_chain_ends_it_there_and_is_logged_once(tmp_path, caplog):
    path = tmp_path / "stats.jsonl"
    blocker = path.with_name("stats.jsonl.3")
    blocker.mkdir()
    results = JsonLines(path, rotate_bytes=100, keep=4)
    with caplog.at_level(logging.WARNING, logger="client.results"):
        _write_many(results, 200)
    results.close()
    files = [p for p in _family(path) if p.is_file()]
    assert [p.name for p in files] == ["stats.jsonl", "stats.jsonl.1", "stats.jsonl.2"]
    assert all(p.stat().st_size <= 100 for p in files)
    kept = [r["n"] for r in _records(files)]
    assert kept == list(range(200 - len(kept), 200))  # the newest, unbroken
    assert blocker.is_dir()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and str(blocker) in warnings[0]


def test_symbolic_links_in_the_chain_are_never_followed_nor_removed(tmp_path):
    path = tmp_path / "results" / "detections.jsonl"
    path.parent.mkdir()
    secret = tmp_path / "shadow"
    secret.write_text("root:$6$secret\n", encoding="utf-8")
    two, five = path.with_name("detections.jsonl.2"), path.with_name("detections.jsonl.5")
    two.symlink_to(secret)
    five.symlink_to(secret)  # past keep: a regular file there would be removed
    results = JsonLines(path, rotate_bytes=100, keep=3)
    _write_many(results, 100)
    results.close()
    assert two.is_symlink() and five.is_symlink()
    assert secret.read_text(encoding="utf-8") == "root:$6$secret\n"
    assert path.stat().st_size <= 100 and path.with_name("detections.jsonl.1").stat().st_size <= 100
    assert not path.with_name("detections.jsonl.3").exists()  # the chain ends before the link


def test_the_results_file_itself_is_never_opened_through_a_link_or_as_a_pipe(tmp_path):
    secret = tmp_path / "shadow"
    secret.write_text("root:$6$secret\n", encoding="utf-8")
    link = tmp_path / "stats.jsonl"
    link.symlink_to(secret)
    with pytest.raises(ClientError, match="must be a regular file"):
        JsonLines(link, rotate_bytes=100)
    assert secret.read_text(encoding="utf-8") == "root:$6$secret\n"
    pipe = tmp_path / "detections.jsonl"
    os.mkfifo(pipe)
    with pytest.raises(ClientError, match="not a regular file"):
        JsonLines(pipe, rotate_bytes=100)  # refused at once: never blocks waiting for a reader


def test_a_line_torn_by_a_crash_stays_one_bad_line_and_the_next_record_is_whole(tmp_path, caplog):
    path = tmp_path / "detections.jsonl"
    path.write_bytes(b'{"n":0}\n{"n":1,"pad":"zz')  # the client died in the middle of a write
    with caplog.at_level(logging.WARNING, logger="client.results"):
        results = JsonLines(path, rotate_bytes=10_000)
    results.write({"n": 2})
    results.close()
    assert path.read_bytes().splitlines() == [b'{"n":0}', b'{"n":1,"pad":"zz', b'{"n":2}']
    assert any("ends inside a line" in r.getMessage() for r in caplog.records)
    size = path.stat().st_size
    JsonLines(path).close()  # a file that ends with a newline is continued as it is
    assert path.stat().st_size == size


def test_the_profile_sets_the_limit_and_the_count(tmp_path):
    good = yaml.safe_load((PROFILES / "person-detection" / "profile.yaml").read_text())
    outputs = load_profile(PROFILES / "person-detection", {}).profile.outputs
    assert (outputs.rotate_mb, outputs.rotate_keep, outputs.rotate_bytes) == (64, 4, 64 * 1024 * 1024)
    for key, bad, expected in (
        ("rotate_mb", 0, "outputs.rotate_mb: input should be greater than 0"),
        ("rotate_keep", 0, "outputs.rotate_keep: input should be greater than or equal to 1"),
    ):
        data = copy.deepcopy(good)
        data.setdefault("outputs", {})[key] = bad
        directory = tmp_path / key
        directory.mkdir()
        (directory / "profile.yaml").write_text(yaml.safe_dump(data), encoding="utf-8")
        with pytest.raises(ClientError) as raised:
            load_profile(directory, {})
        assert expected in raised.value.render()
    data = copy.deepcopy(good)
    data.setdefault("outputs", {}).update(rotate_mb=0.5, rotate_keep=2)
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "profile.yaml").write_text(yaml.safe_dump(data), encoding="utf-8")
    half = load_profile(tmp_path / "half", {}).profile.outputs
    assert (half.rotate_bytes, half.rotate_keep) == (512 * 1024, 2)


# -- status reads across a rotation (module_utils ovms_results) ------------------------------------
@pytest.fixture
def rotated(tmp_path: Path) -> Path:
    """results/<instance>/ just after a rotation: stats.jsonl.1 full, stats.jsonl new and empty."""
    folder = tmp_path / "results" / "shop-1"
    folder.mkdir(parents=True)
    results = JsonLines(folder / "stats.jsonl", rotate_bytes=200, keep=2)
    for n in range(12):
        results.write({"fps": 15.0, "frames": n})
    results.close()
    assert _records([folder / "stats.jsonl.1"])  # the real writer rotated
    (folder / "stats.jsonl").write_bytes(b"")  # the instant before its first line
    return folder


def _tail(folder: Path, **kwargs) -> dict:
    return TAIL.read_tail(str(folder / "stats.jsonl"), str(folder.parent), **kwargs)


def test_status_reads_the_newest_rotated_file_while_the_current_one_has_no_whole_line(rotated):
    newest = _records([rotated / "stats.jsonl.1"])[-1]
    got = _tail(rotated)
    assert json.loads(got["stdout"]) == newest and got["rotated"] and got["size"] == 0
    (rotated / "stats.jsonl").write_bytes(b'{"fps": 1')  # a line still being written
    assert json.loads(_tail(rotated)["stdout"]) == newest
    (rotated / "stats.jsonl").unlink()  # the instant between the rename and the new file
    assert json.loads(_tail(rotated)["stdout"]) == newest


def test_status_reads_the_current_file_once_it_has_a_whole_line(rotated):
    (rotated / "stats.jsonl").write_text(json.dumps({"frames": 99}) + "\n", encoding="utf-8")
    one = rotated / "stats.jsonl.1"
    kept = _records([one])
    one.unlink()
    os.mkfifo(one)  # would be refused if it were opened: it is not
    got = _tail(rotated)
    assert json.loads(got["stdout"]) == {"frames": 99} and not got["rotated"]
    one.unlink()
    one.write_text("".join(json.dumps(r) + "\n" for r in kept), encoding="utf-8")
    two = _tail(rotated, lines=2)  # more lines than the current file has: the rest from .1, in order
    assert [json.loads(line) for line in two["stdout_lines"]] == [kept[-1], {"frames": 99}]


def test_the_rotated_file_is_read_by_the_same_rules(rotated, tmp_path):
    secret = tmp_path / "shadow"
    secret.write_text("root:$6$secret\n", encoding="utf-8")
    one = rotated / "stats.jsonl.1"
    one.unlink()
    one.symlink_to(secret)
    with pytest.raises(TAIL.Refused) as raised:
        _tail(rotated)
    assert str(raised.value) == "stats.jsonl.1: 'stats.jsonl.1' is a symbolic link"
    one.unlink()
    one.write_text("x" * 5000 + "\n" + json.dumps({"frames": 5}) + "\n", encoding="utf-8")
    (rotated / "stats.jsonl").write_bytes(b"0123456789")  # 10 bytes of the budget, no whole line
    assert _tail(rotated, max_bytes=60)["stdout_lines"] == [json.dumps({"frames": 5})]
    assert _tail(rotated, max_bytes=20)["stdout"] == ""  # what is left of the budget cuts the line
    one.unlink()
    (rotated / "stats.jsonl").unlink()
    with pytest.raises(TAIL.Refused, match=r"^does not exist$"):
        _tail(rotated)


def test_reads_during_rotations_never_return_a_cut_record(tmp_path):
    folder = tmp_path / "results" / "shop-1"
    results = JsonLines(folder / "stats.jsonl", rotate_bytes=2_000, keep=2)
    results.write({"frames": -1})
    done = threading.Event()

    def write() -> None:
        for n in range(3_000):
            results.write({"frames": n, "pad": "p" * (n % 90)})
        done.set()

    writer = threading.Thread(target=write)
    writer.start()
    reads = 0
    while not done.is_set() or reads == 0:
        try:
            got = _tail(folder, lines=3)
        except TAIL.Refused as exc:  # the instant a rotation shifts .1 and the current file is gone
            assert str(exc) == "does not exist"
            continue
        for line in got["stdout_lines"]:
            record = json.loads(line)
            assert record.get("pad", "") == "p" * (record["frames"] % 90) or record["frames"] == -1
        reads += 1
    writer.join()
    results.close()
    assert reads > 0
