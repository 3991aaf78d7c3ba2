"""L4 of issue 21: `status` reads each client's latest stats line from a folder the client's user
writes to. Module ovms_tail reads it as root without following a link (a symbolic link would read
any host file into the run's artifacts) and without blocking (a FIFO would hang every deploy's
summary and `launcher status`), only the file's last bytes, in bounded time; the role's filter
turns a refused read into a row without stats, as a missing file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from launcher.content import content
from testbed.paths import PROJECT_ROOT
from testbed.plugins import load_plugin

pytestmark = [pytest.mark.contract]


TAIL = load_plugin("plugins/modules/ovms_tail.py")
FILTERS = load_plugin("plugins/filter/ovms_client.py")
LINE = {"fps": 14.5, "frames": 90, "latency_p95_ms": 12.0}


@pytest.fixture
def results(tmp_path: Path) -> Path:
    """results/<instance>/ as a client leaves it: JSON lines, the last one still being written."""
    folder = tmp_path / "results" / "person-detection-1"
    folder.mkdir(parents=True)
    lines = [json.dumps({**LINE, "frames": n}) for n in (30, 60, 90)]
    (folder / "stats.jsonl").write_text("\n".join(lines) + '\n{"fps": 1', encoding="utf-8")
    return tmp_path / "results"


def test_a_regular_file_gives_its_last_whole_line(results):
    got = TAIL.read_tail(str(results / "person-detection-1" / "stats.jsonl"), str(results))
    assert json.loads(got["stdout"]) == LINE
    two = TAIL.read_tail(str(results / "person-detection-1" / "stats.jsonl"), str(results), lines=2)
    assert [json.loads(line)["frames"] for line in two["stdout_lines"]] == [60, 90]


def test_only_the_last_bytes_are_read(results):
    stats = results / "person-detection-1" / "stats.jsonl"
    stats.write_text("x" * 5_000_000 + "\n" + json.dumps(LINE) + "\n", encoding="utf-8")
    got = TAIL.read_tail(str(stats), str(results), max_bytes=1024)
    assert got["stdout_lines"] == [json.dumps(LINE)] and got["size"] > 5_000_000
    # a line longer than the window is never returned cut
    assert TAIL.read_tail(str(stats), str(results), max_bytes=10)["stdout"] == ""


def _refused(path: Path, root: Path) -> str:
    with pytest.raises(TAIL.Refused) as raised:
        TAIL.read_tail(str(path), str(root))
    return str(raised.value)


def test_a_symbolic_link_is_refused(results, tmp_path):
    secret = tmp_path / "shadow"
    secret.write_text("root:$6$secret\n", encoding="utf-8")
    stats = results / "person-detection-1" / "stats.jsonl"
    stats.unlink()
    stats.symlink_to(secret)
    assert _refused(stats, results) == "'stats.jsonl' is a symbolic link"
    # an instance folder replaced by a link (below the trusted root) is refused as well
    (results / "other").symlink_to(tmp_path)
    assert _refused(results / "other" / "shadow", results) == "'other' is a symbolic link"


def test_a_fifo_is_refused_at_once(results):
    stats = results / "person-detection-1" / "stats.jsonl"
    stats.unlink()
    os.mkfifo(stats)
    started = time.monotonic()
    assert _refused(stats, results) == "is a FIFO, not a regular file"
    assert time.monotonic() - started < 2


def test_other_paths_are_refused(results):
    folder = results / "person-detection-1"
    assert _refused(folder / "gone.jsonl", results) == "does not exist"
    assert _refused(folder, results) == "is a folder, not a regular file"
    assert _refused(results / ".." / "elsewhere", results).startswith("is not inside")


def _module(path: Path, root: Path) -> dict:
    """The module as the role runs it (ansible's own module runner), its JSON result."""
    env = {
        **os.environ,
        "ANSIBLE_CONFIG": str(PROJECT_ROOT / "ansible.cfg"),
        "ANSIBLE_COLLECTIONS_PATH": str(content().collections_path),
        "ANSIBLE_LOAD_CALLBACK_PLUGINS": "1",
        "ANSIBLE_STDOUT_CALLBACK": "json",
        "ANSIBLE_LOCALHOST_WARNING": "false",
        "ANSIBLE_INVENTORY_UNPARSED_WARNING": "false",
    }
    run = subprocess.run(
        [str(Path(sys.executable).parent / "ansible"), "localhost", "-i", "localhost,", "-c", "local",
         "-e", f"ansible_python_interpreter={sys.executable}",
         "-m", "ovms.edge.ovms_tail", "-a", json.dumps({"path": str(path), "root": str(root)})],
        capture_output=True, text=True, env=env, timeout=60, check=False,
    )  # fmt: skip
    report = json.loads(run.stdout)
    return report["plays"][0]["tasks"][0]["hosts"]["localhost"]


@pytest.mark.slow
def test_the_module_reads_refuses_and_the_filter_shows_no_stats(results):
    stats = results / "person-detection-1" / "stats.jsonl"
    good = _module(stats, results)
    assert not good.get("failed") and not good["changed"] and json.loads(good["stdout"]) == LINE
    stats.unlink()
    os.mkfifo(stats)
    started = time.monotonic()
    fifo = _module(stats, results)
    assert time.monotonic() - started < 30
    assert fifo["failed"] and fifo["msg"] == f"{stats}: refused: is a FIFO, not a regular file"
    # status.yml registers the loop's results (failed_when: false): a refused read is a row without stats
    rows = FILTERS.ovms_client_stats(
        [
            {**good, "ovms_client_status_name": "person-detection-1"},
            {**fifo, "failed": False, "ovms_client_status_name": "person-detection-2"},
        ]
    )
    assert [(r["name"], r["fps"], r["frames"]) for r in rows] == [
        ("person-detection-1", 14.5, 90),
        ("person-detection-2", None, None),
    ]


def test_status_reads_with_the_module_and_a_timeout():
    """roles/ovms_client/tasks/status.yml: no `tail`, the module with a bounded window and time."""
    import yaml

    tasks = yaml.safe_load((PROJECT_ROOT / "roles" / "ovms_client" / "tasks" / "status.yml").read_text())
    [read] = [t for t in tasks if t["name"] == "Read the latest stats line of each client"]
    assert read["ovms.edge.ovms_tail"]["root"] == "{{ ovms_client_data_dir }}/results"
    assert read["timeout"] <= 60 and read["failed_when"] is False
    for role in (PROJECT_ROOT / "roles").iterdir():
        for task_file in (role / "tasks").glob("*.yml"):
            assert "[tail," not in task_file.read_text(), task_file
