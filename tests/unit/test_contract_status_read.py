"""L4 of issue 21: `status` reads each client's latest stats line from a folder the client's user
writes to. Module ovms_client_status reads it as root by the rules of module_utils ovms_results:
within the instance's own results folder, without following a link (a symbolic link would read any
host file into the run's artifacts) and without blocking (a FIFO would hang every deploy's summary and
`launcher status`), only the file's last bytes, in bounded time; the role's filter turns a refused read
into a row without stats, as a missing file."""

from __future__ import annotations

import http.server
import json
import os
import socketserver
import subprocess
import sys
import threading
import time
import urllib.parse
from pathlib import Path

import pytest
import yaml

from launcher.content import content
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


class _Engine(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    """A Docker engine's API as the module asks it (version, then the container list), on a socket of
    the test's own: the module is run as the role runs it, without a Docker engine."""

    daemon_threads = True

    def __init__(self, path: Path, containers: list[dict]) -> None:
        self.containers = containers
        self.queries: list[str] = []
        super().__init__(str(path), _Handler)


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _Engine

    def do_GET(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        if url.path.endswith("/containers/json"):
            self.server.queries.append(url.query)
            body: object = self.server.containers
        elif url.path.endswith("/version"):
            body = {"ApiVersion": "1.43", "MinAPIVersion": "1.12", "Version": "24.0.0", "Os": "linux"}
        elif url.path.endswith("/_ping"):
            body = "OK"
        else:
            self.send_error(404)
            return
        data = json.dumps(body).encode() if not isinstance(body, str) else body.encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json" if not isinstance(body, str) else "text/plain")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def address_string(self) -> str:
        return "test"

    def log_message(self, format: str, *args: object) -> None:
        del format, args


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
    """The module as the role runs it (ansible's own module runner, the role's arguments), its JSON
    result, and the queries the engine saw."""
    socket = tmp_path / "engine.sock"
    engine = _Engine(socket, containers)
    thread = threading.Thread(target=engine.serve_forever, daemon=True)
    thread.start()
    tasks = yaml.safe_load((PROJECT_ROOT / "roles" / "ovms_client" / "tasks" / "status.yml").read_text())
    [task] = [t for t in tasks if "ovms.edge.ovms_client_status" in t]
    args = {**task["ovms.edge.ovms_client_status"], "data_dir": str(data_dir), "prefix": "ovms-client",
            "docker_host": f"unix://{socket}"}  # fmt: skip
    env = {
        **os.environ,
        "ANSIBLE_CONFIG": str(PROJECT_ROOT / "ansible.cfg"),
        "ANSIBLE_COLLECTIONS_PATH": str(content().collections_path),
        "ANSIBLE_LOAD_CALLBACK_PLUGINS": "1",
        "ANSIBLE_STDOUT_CALLBACK": "json",
        "ANSIBLE_LOCALHOST_WARNING": "false",
        "ANSIBLE_INVENTORY_UNPARSED_WARNING": "false",
    }
    try:
        run = subprocess.run(
            [str(Path(sys.executable).parent / "ansible"), "localhost", "-i", "localhost,", "-c", "local",
             "-e", f"ansible_python_interpreter={sys.executable}",
             "-m", "ovms.edge.ovms_client_status", "-a", json.dumps(args)],
            capture_output=True, text=True, env=env, timeout=120, check=False,
        )  # fmt: skip
    finally:
        engine.shutdown()
        engine.server_close()
    report = json.loads(run.stdout)
    return report["plays"][0]["tasks"][0]["hosts"]["localhost"], engine.queries


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
        _container("other-client-shop-1", "shop", "1", "pace.jsonl"),  # another deployment's
    ]
    started = time.monotonic()
    got, queries = _status(tmp_path, containers, data_dir)
    assert time.monotonic() - started < 60
    assert not got.get("failed") and not got["changed"], got
    # the engine was asked for the client role's containers, stopped ones too
    assert len(queries) == 1 and "all=1" in queries[0] and "ovms-launcher.role%3Dclient" in queries[0]
    assert [c["Names"][0] for c in got["containers"]] == [f"/{c['Names'][0][1:]}" for c in containers[:6]]
    reads = {entry["name"]: entry for entry in got["stats"]}
    assert list(reads) == ["person-detection-1", "person-detection-2", "shop-1", "shop-2", "shop-3", "shop-4"]
    assert (
        json.loads(reads["person-detection-1"]["stdout"]) == LINE and "msg" not in reads["person-detection-1"]
    )
    assert json.loads(reads["shop-1"]["stdout"]) == {"fps": 3.0}
    for name, why in (
        ("person-detection-2", "is a FIFO, not a regular file"),
        ("shop-2", "'pace.jsonl' is a symbolic link"),
        ("shop-3", "is not inside"),
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


def test_status_reads_with_the_module_in_one_call_and_a_timeout():
    """roles/ovms_client/tasks/status.yml: no `tail`, no loop over the containers: the module, with a
    bounded window and time."""
    tasks = yaml.safe_load((PROJECT_ROOT / "roles" / "ovms_client" / "tasks" / "status.yml").read_text())
    [read] = [t for t in tasks if "ovms.edge.ovms_client_status" in t]
    assert read["ovms.edge.ovms_client_status"]["data_dir"] == "{{ ovms_client_data_dir }}"
    assert read["ovms.edge.ovms_client_status"]["timeout"] <= 60 and read["timeout"] <= 120
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


def test_the_stats_file_is_read_within_the_instance_s_own_folder(results):
    labels = {"ovms-launcher.profile": "person-detection", "ovms-launcher.instance": "1"}
    path, folder = TAIL.stats_path(str(results), {**labels, "ovms-launcher.stats-file": "stats.jsonl"})
    assert (path, folder) == (
        str(results / "person-detection-1" / "stats.jsonl"),
        str(results / "person-detection-1"),
    )
    assert json.loads(TAIL.read_tail(path, folder)["stdout"]) == LINE
    for name in ("../person-detection-1/stats.jsonl", "/etc/passwd", ".."):
        path, folder = TAIL.stats_path(str(results), {**labels, "ovms-launcher.instance": "2",
                                                       "ovms-launcher.stats-file": name})  # fmt: skip
        with pytest.raises(TAIL.Refused):
            TAIL.read_tail(path, folder)
