"""L4 of issue 21: `status` reads each client's latest stats line from a folder the client's user
writes to. Module ovms_client_status reads it as root by the rules of module_utils ovms_results:
within the instance's own results folder, without following a link (a symbolic link would read any
host file into the run's artifacts) and without blocking (a FIFO would hang every deploy's summary and
`launcher status`), only the file's last bytes, in bounded time; the role's filter turns a refused read
into a row without stats, as a missing file."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
import yaml

from testbed.fake_engine import run_docker_module
from testbed.paths import PROJECT_ROOT
from testbed.plugins import load_plugin

pytestmark = [pytest.mark.contract]


TAIL = load_plugin("plugins/module_utils/ovms_results.py")
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


def _container(name: str, profile: str, instance: str, stats: str | None) -> dict:
    labels = {
        "ovms-launcher.role": "client",
        "ovms-launcher.profile": profile,
        "ovms-launcher.instance": instance,
    }
    if stats is not None:
        labels["ovms-launcher.stats-file"] = stats
    return {
        "Names": [f"/{name}"],
        "Labels": labels,
        "State": "running",
        "Status": "Up 1 minute",
        "Image": "c",
    }


def _status(tmp_path: Path, containers: list[dict], data_dir: Path) -> tuple[dict, list[str]]:
    """The module as the role runs it (the role's arguments), its result and the engine's queries."""
    tasks = yaml.safe_load((PROJECT_ROOT / "roles" / "ovms_client" / "tasks" / "status.yml").read_text())
    [task] = [t for t in tasks if "ovms.edge.ovms_client_status" in t]
    args = {**task["ovms.edge.ovms_client_status"], "data_dir": str(data_dir), "prefix": "ovms-client"}
    args["labels"] = [
        "ovms-launcher.managed=true",
        "ovms-launcher.role=client",
    ]  # the role's: test_client_survey
    return run_docker_module(tmp_path, "ovms.edge.ovms_client_status", args, containers)


@pytest.mark.slow
def test_the_module_reads_each_client_s_own_stats_file_and_refuses_the_rest(results, tmp_path):
    data_dir = results.parent
    (results / "person-detection-2").mkdir()
    os.mkfifo(results / "person-detection-2" / "stats.jsonl")
    (results / "shop-1").mkdir()
    (results / "shop-1" / "pace.jsonl").write_text(json.dumps({"fps": 3.0}) + "\n", encoding="utf-8")
    (results / "shop-2").mkdir()
    (results / "shop-2" / "pace.jsonl").symlink_to(results / "person-detection-1" / "stats.jsonl")
    containers = [
        _container("ovms-client-person-detection-1", "person-detection", "1", "stats.jsonl"),
        _container("ovms-client-person-detection-2", "person-detection", "2", "stats.jsonl"),  # a FIFO
        _container("ovms-client-shop-1", "shop", "1", "pace.jsonl"),  # the profile's own name
        _container("ovms-client-shop-2", "shop", "2", "pace.jsonl"),  # a link
        _container("ovms-client-shop-3", "shop", "3", "../person-detection-1/stats.jsonl"),  # another's
        _container("ovms-client-shop-4", "shop", "4", None),  # started before the label existed
        _container("ovms-client-x", "..", "1/../../..", "secret"),  # labels that would leave results/
        _container("other-client-shop-1", "shop", "1", "pace.jsonl"),  # another deployment's
    ]
    started = time.monotonic()
    got, queries = _status(tmp_path, containers, data_dir)
    assert time.monotonic() - started < 60
    assert not got.get("failed") and not got["changed"], got
    # the engine was asked for the client role's containers, stopped ones too
    assert len(queries) == 1 and "all=1" in queries[0] and "ovms-launcher.role%3Dclient" in queries[0]
    assert "ovms-launcher.managed%3Dtrue" in queries[0]
    assert [c["Names"][0] for c in got["containers"]] == [f"/{c['Names'][0][1:]}" for c in containers[:7]]
    reads = {entry["name"]: entry for entry in got["stats"]}
    assert list(reads) == [
        "person-detection-1", "person-detection-2", "shop-1", "shop-2", "shop-3", "shop-4", "..-1/../../..",
    ]  # fmt: skip
    assert (
        json.loads(reads["person-detection-1"]["stdout"]) == LINE and "msg" not in reads["person-detection-1"]
    )
    assert json.loads(reads["shop-1"]["stdout"]) == {"fps": 3.0}
    for name, why in (
        ("person-detection-2", "is a FIFO, not a regular file"),
        ("shop-2", "'pace.jsonl' is a symbolic link"),
        ("shop-3", "is not a plain name"),
        ("..-1/../../..", "is not a plain name"),
        ("shop-4", "no ovms-launcher.stats-file label"),
    ):
        assert reads[name]["stdout"] == "" and why in reads[name]["msg"], reads[name]
    # the role's filter: a refused read is a row without stats
    rows = FILTERS.ovms_client_stats(got["stats"])
    assert [(r["name"], r["fps"], r["frames"]) for r in rows][:3] == [
        ("person-detection-1", 14.5, 90),
        ("person-detection-2", None, None),
        ("shop-1", 3.0, None),
    ]
    # with the reason none was read (a container from before the label: deploy again)
    assert "note" not in rows[0] and "is a FIFO" in rows[1]["note"] and "deploy again" in rows[5]["note"]


def test_status_reads_with_the_module_in_one_call_and_a_timeout():
    """roles/ovms_client/tasks/status.yml: no `tail`, no loop over the containers: the module, with a
    bounded window and time."""
    tasks = yaml.safe_load((PROJECT_ROOT / "roles" / "ovms_client" / "tasks" / "status.yml").read_text())
    [read] = [t for t in tasks if "ovms.edge.ovms_client_status" in t]
    assert read["ovms.edge.ovms_client_status"]["data_dir"] == "{{ ovms_client_data_dir }}"
    module = read["ovms.edge.ovms_client_status"]
    assert module["read_timeout"] <= module["total_timeout"] < read["timeout"] <= 120
    # the engine's own timeout (community.docker's `timeout`) stays its default
    assert "timeout" not in module
    assert not any("loop" in t for t in tasks)
    for role in (PROJECT_ROOT / "roles").iterdir():
        for task_file in (role / "tasks").glob("*.yml"):
            assert "[tail," not in task_file.read_text(), task_file


@pytest.mark.parametrize(
    ("labels", "why"),
    [
        ({"ovms-launcher.profile": "p", "ovms-launcher.instance": "1"}, "no ovms-launcher.stats-file label"),
        ({"ovms-launcher.profile": "p", "ovms-launcher.stats-file": ""}, "no ovms-launcher.stats-file label"),
        ({"ovms-launcher.profile": "p", "ovms-launcher.stats-file": 5}, "no ovms-launcher.stats-file label"),
    ],
)
def test_a_container_without_its_stats_label_is_refused(labels, why):
    with pytest.raises(TAIL.Refused, match=why):
        TAIL.stats_path("/data/results", labels)


def test_the_stats_file_is_read_within_the_instance_s_own_folder(results, tmp_path):
    labels = {"ovms-launcher.profile": "person-detection", "ovms-launcher.instance": "1"}
    path, root = TAIL.stats_path(str(results), {**labels, "ovms-launcher.stats-file": "stats.jsonl"})
    assert (path, root) == (str(results / "person-detection-1" / "stats.jsonl"), str(results))
    assert json.loads(TAIL.read_tail(path, root)["stdout"]) == LINE
    for changed in (
        {"ovms-launcher.stats-file": "../person-detection-1/stats.jsonl"},
        {"ovms-launcher.stats-file": "/etc/passwd"},
        {"ovms-launcher.stats-file": ".."},
        {"ovms-launcher.stats-file": "a/b"},
        {"ovms-launcher.instance": "1/../../..", "ovms-launcher.stats-file": "secret"},
        {"ovms-launcher.profile": "/etc", "ovms-launcher.stats-file": "passwd"},
    ):
        with pytest.raises(TAIL.Refused, match="is not a plain name"):
            TAIL.stats_path(str(results), {**labels, "ovms-launcher.stats-file": "stats.jsonl", **changed})
    # an instance folder replaced by a link (the client's user cannot: results/ is root's) is refused
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "stats.jsonl").write_text(json.dumps(LINE) + "\n", encoding="utf-8")
    (results / "shop-1").symlink_to(tmp_path / "elsewhere")
    shop = {**labels, "ovms-launcher.profile": "shop", "ovms-launcher.stats-file": "stats.jsonl"}
    path, root = TAIL.stats_path(str(results), shop)
    with pytest.raises(TAIL.Refused, match="'shop-1' is a symbolic link"):
        TAIL.read_tail(path, root)
