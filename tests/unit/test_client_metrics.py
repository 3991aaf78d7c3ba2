"""The client's Prometheus metrics (client/metrics.py), scraped from the real HTTP endpoint: names,
labels and values after real events fed through Stats, the sources' status and the server gate;
counters that never go down; OVMS_METRICS_PORT checked like every deployment variable; the whole
client run (client.app.run against an in-process server) serving them while it works; and the
Prometheus targets file (http_sd) the ovms_client role writes from the same container names."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import yaml
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from client.app import RunOptions, run
from client.backoff import Backoff
from client.errors import ClientError, RequestRejected
from client.health import Admission, ServerGate
from client.metrics import ClientMetrics
from client.settings import deployment_from_env
from client.sources import SourceStatus
from client.stats import Stats
from testbed.paths import PROJECT_ROOT
from testbed.playbook import run_playbook, task_results
from testbed.plugins import load_plugin

pytestmark = [pytest.mark.observability]

STAGES = [("detect", "person-detection"), ("read", None)]


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Source:
    """A source whose status reports the reconnects the test sets."""

    description = "test"

    def __init__(self, reconnects: int = 0) -> None:
        self.reconnects = reconnects

    def status(self) -> SourceStatus:
        return SourceStatus("test", "reading", reconnects=self.reconnects)


Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(port: int) -> Samples:
    """Every sample of http://127.0.0.1:<port>/metrics by (name, sorted labels)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode("utf-8")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


@pytest.fixture
def served() -> Iterator[ClientMetrics]:
    metrics = ClientMetrics("shop", 2, 15.0, STAGES, registry=CollectorRegistry())
    metrics.serve(0, "127.0.0.1")
    yield metrics
    metrics.close()


def test_the_endpoint_shows_each_event_by_profile_stream_and_stage(served):
    clock = Clock()
    stats = Stats(10.0, clock=clock, streams=2, stages=STAGES, on_latency=served.observe_latency)
    sources = [Source(reconnects=0), Source(reconnects=2)]
    gate = ServerGate(Backoff(0.2, 2.0))
    served.attach(stats=stats, sources=sources, gate=gate)
    for _ in range(3):
        stats.result(0.01, stream=0)
    stats.result(0.02, stream=1)
    stats.drop(error=True, stream=1)  # its request failed
    stats.drop(error=False, stream=0)  # never sent: the server was down
    stats.stage_request("detect", 0.004, ok=True)
    stats.stage_request("detect", 0.3, ok=True)
    stats.stage_request("detect", 0.5, ok=False)  # a failure has no latency sample
    stats.stage_request("read", 0.002, ok=True)
    clock.now += 5.0  # the window holds 5 s of results

    got = scrape(served.port)
    s0, s1 = {"profile": "shop", "stream": "0"}, {"profile": "shop", "stream": "1"}
    assert (value(got, "ovms_client_frames_total", **s0), value(got, "ovms_client_frames_total", **s1)) == (
        3,
        1,
    )
    assert (value(got, "ovms_client_errors_total", **s0), value(got, "ovms_client_errors_total", **s1)) == (
        0,
        1,
    )
    dropped = "ovms_client_dropped_frames_total"
    assert (value(got, dropped, **s0), value(got, dropped, **s1)) == (1, 1)
    reconnects = "ovms_client_reconnects_total"
    assert (value(got, reconnects, **s0), value(got, reconnects, **s1)) == (0, 2)
    assert value(got, "ovms_client_fps", **s0) == pytest.approx(0.6)
    assert value(got, "ovms_client_fps", **s1) == pytest.approx(0.2)
    assert value(got, "ovms_client_target_fps", **s0) == value(got, "ovms_client_target_fps", **s1) == 15.0
    assert value(got, "ovms_client_server_up", profile="shop") == 1.0

    latency = "ovms_client_inference_latency_seconds"
    detect = {"profile": "shop", "stage": "detect", "model": "person-detection"}
    assert value(got, f"{latency}_count", **detect) == 2
    assert value(got, f"{latency}_sum", **detect) == pytest.approx(0.304)
    assert value(got, f"{latency}_bucket", **detect, le="0.005") == 1
    assert value(got, f"{latency}_bucket", **detect, le="0.5") == 2
    # a stage run in the client (no model) has its own series, model empty
    assert value(got, f"{latency}_count", profile="shop", stage="read", model="") == 1

    # the window moves on: the rate falls, the counters stay
    clock.now += 20.0
    later = scrape(served.port)
    assert value(later, "ovms_client_fps", **s0) == 0.0
    assert value(later, "ovms_client_frames_total", **s0) == 3

    gate.failure(Admission.SEND, ConnectionError("server gone"))
    assert value(scrape(served.port), "ovms_client_server_up", profile="shop") == 0.0
    gate.success(Admission.PROBE)
    assert value(scrape(served.port), "ovms_client_server_up", profile="shop") == 1.0


def test_before_the_run_is_attached_every_series_is_there_and_the_server_down(served):
    got = scrape(served.port)
    for stream in ("0", "1"):
        labels = {"profile": "shop", "stream": stream}
        for name in ("frames", "errors", "dropped_frames", "reconnects"):
            assert value(got, f"ovms_client_{name}_total", **labels) == 0
        assert value(got, "ovms_client_fps", **labels) == 0
        assert value(got, "ovms_client_target_fps", **labels) == 15.0
    assert value(got, "ovms_client_server_up", profile="shop") == 0.0
    detect = {"profile": "shop", "stage": "detect", "model": "person-detection"}
    assert value(got, "ovms_client_inference_latency_seconds_count", **detect) == 0


def test_counters_never_go_down(served):
    stats = Stats(10.0, streams=2)
    source = Source(reconnects=3)
    served.attach(stats=stats, sources=[source, Source()])
    labels = {"profile": "shop", "stream": "0"}
    seen = []
    for step in range(4):
        stats.result(0.01, stream=0)
        if step == 2:
            source.reconnects = 1  # a reader that reports less than before (a replaced source, say)
        got = scrape(served.port)
        seen.append(
            (
                value(got, "ovms_client_frames_total", **labels),
                value(got, "ovms_client_reconnects_total", **labels),
            )
        )
    assert [frames for frames, _ in seen] == [1, 2, 3, 4]
    assert [reconnects for _, reconnects in seen] == [3, 3, 3, 3]


def test_each_run_has_its_own_registry():
    first = ClientMetrics("a", 1, 0.0, [("m", "m")])
    second = ClientMetrics("b", 1, 0.0, [("m", "m")])
    assert first.registry is not second.registry
    first.attach(stats=Stats(10.0))
    assert first.registry.get_sample_value("ovms_client_frames_total", {"profile": "a", "stream": "0"}) == 0
    assert (
        second.registry.get_sample_value("ovms_client_frames_total", {"profile": "a", "stream": "0"}) is None
    )


@pytest.mark.parametrize(
    ("text", "port"), [("", None), ("  ", None), ("9464", 9464), (" 1 ", 1), ("65535", 65535)]
)
def test_the_metrics_port_comes_from_the_environment(text, port):
    assert deployment_from_env({"OVMS_ADDRESS": "ovms:9000", "OVMS_METRICS_PORT": text}).metrics_port == port
    assert deployment_from_env({"OVMS_ADDRESS": "ovms:9000"}).metrics_port is None


@pytest.mark.parametrize("text", ["0", "65536", "http", "-1", "9464.0", "٩٤٦٤"])
def test_a_bad_metrics_port_names_the_variable(text):
    with pytest.raises(ClientError) as raised:
        deployment_from_env({"OVMS_ADDRESS": "ovms:9000", "OVMS_METRICS_PORT": text})
    assert raised.value.key == "OVMS_METRICS_PORT" and raised.value.file == "environment"
    assert repr(text) in raised.value.message and "ovms_client_metrics_port" in (raised.value.fix or "")


def test_a_port_in_use_names_the_variable():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        metrics = ClientMetrics("shop", 1, 0.0, [])
        with pytest.raises(ClientError) as raised:
            metrics.serve(busy.getsockname()[1], "127.0.0.1")
    assert raised.value.key == "OVMS_METRICS_PORT" and metrics.port is None


# -- the whole run ----------------------------------------------------------------------------------
MODEL = {"name": "tiny", "version": 1, "input": "data", "size": {"width": 8, "height": 8}, "dtype": "uint8"}
METADATA = {
    "model_version": 1,
    "inputs": {"data": {"shape": [1, 8, 8, 3], "dtype": "UINT8"}},
    "outputs": {"out": {"shape": [1, 4], "dtype": "FP32"}},
}


class ScriptedServer:
    """An in-process server. Stream 0's frames (grey 50) are answered, the last one held until the
    test releases it (the run is scraped meanwhile); stream 1's (grey 200) are refused."""

    address = "in-process"

    def __init__(self, frames: int) -> None:
        self.frames = frames
        self.answered = 0
        self.refused = 0
        self.lock = threading.Lock()
        self.held = threading.Event()  # stream 0's last request arrived
        self.refused_all = threading.Event()  # every frame of stream 1 was refused
        self.release = threading.Event()

    def wait_for_metadata(self, stop: threading.Event, backoff: Backoff) -> dict[str, Any] | None:
        return METADATA

    def reconnect(self) -> None:
        pass

    def predict(self, payload: Any) -> dict[str, np.ndarray]:
        with self.lock:
            if float(np.mean(payload)) > 128:
                self.refused += 1
                if self.refused == self.frames:
                    self.refused_all.set()
                raise RequestRejected("a frame the server cannot read")
            self.answered += 1
            last = self.answered == self.frames
        if last:
            self.held.set()
            self.release.wait(60)
        return {"out": np.zeros((1, 4), np.float32)}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_a_client_run_serves_its_metrics_while_it_works(tmp_path: Path):
    folder = tmp_path / "profile"
    for name, grey in (("dark", 50), ("light", 200)):
        (folder / name).mkdir(parents=True)
        cv2.imwrite(str(folder / name / "a.png"), np.full((16, 16, 3), grey, np.uint8))
    profile = {
        "name": "shop",
        "model": MODEL,
        "postprocess": {"type": "raw"},
        "inputs": [{"type": "images", "path": "dark"}, {"type": "images", "path": "light"}],
        "target_fps": 0,
        "pipeline": {"mode": "sync"},
        "outputs": {"snapshot_interval_s": 0, "stats_interval_s": 60},
    }
    (folder / "profile.yaml").write_text(json.dumps(profile), encoding="utf-8")
    port = _free_port()
    environ = {
        "OVMS_ADDRESS": "in-process:1",
        "OVMS_RESULTS_DIR": str(tmp_path / "results"),
        "OVMS_METRICS_PORT": str(port),
    }
    server = ScriptedServer(frames=3)
    codes: list[int] = []
    runner = threading.Thread(
        target=lambda: codes.append(run(RunOptions(folder, max_frames=3), environ, lambda *_: server)),
        daemon=True,
    )
    runner.start()
    try:
        assert server.held.wait(60) and server.refused_all.wait(60), "the client never sent its frames"
        got = scrape(port)
    finally:
        server.release.set()
        runner.join(60)
    s0, s1 = {"profile": "shop", "stream": "0"}, {"profile": "shop", "stream": "1"}
    counters = ("frames", "errors", "dropped_frames")
    assert [value(got, f"ovms_client_{name}_total", **s0) for name in counters] == [2, 0, 0]
    assert [value(got, f"ovms_client_{name}_total", **s1) for name in counters] == [0, 3, 3]
    assert value(got, "ovms_client_server_up", profile="shop") == 1.0
    assert value(got, "ovms_client_target_fps", **s0) == 0.0
    assert value(got, "ovms_client_fps", **s0) > 0 and value(got, "ovms_client_fps", **s1) == 0
    stage = {"profile": "shop", "stage": "tiny", "model": "tiny"}
    assert value(got, "ovms_client_inference_latency_seconds_count", **stage) == 2
    # the run ended (every stream's frames) and its endpoint with it
    assert codes == [0]
    with pytest.raises(urllib.error.URLError):
        scrape(port)


# -- the http_sd document the ovms_client role writes (metrics/sd.json) -----------------------------
SD = load_plugin("plugins/filter/ovms_client.py")
SD_TASK = "List the client containers for Prometheus"


def test_the_targets_are_every_instance_container_with_its_port_and_profile():
    profiles = [{"name": "person-detection", "instances": 2}, {"name": "price-label"}]
    document = json.loads(SD.ovms_client_metrics_sd(profiles, "ovms-client", 9464))
    assert document == [
        {"targets": ["ovms-client-person-detection-1:9464"], "labels": {"profile": "person-detection"}},
        {"targets": ["ovms-client-person-detection-2:9464"], "labels": {"profile": "person-detection"}},
        {"targets": ["ovms-client-price-label-1:9464"], "labels": {"profile": "price-label"}},
    ]
    # the names are the containers' own (the role runs them under these names)
    read = {profile["name"]: {} for profile in profiles}
    specs = [
        spec["name"] for spec in SD.ovms_client_instance_specs({}, profiles, "ovms-client", "/data", read, [])
    ]
    assert [t for entry in document for t in entry["targets"]] == [f"{name}:9464" for name in specs]
    assert json.loads(SD.ovms_client_metrics_sd([], "ovms-client", "9464")) == []


def _sd_play(tmp_path: Path, profiles: list[dict]) -> subprocess.CompletedProcess[str]:
    """The role's own task (tasks/main.yml, by its name), run by ansible-playbook on this machine."""
    tasks = yaml.safe_load((PROJECT_ROOT / "roles" / "ovms_client" / "tasks" / "main.yml").read_text())
    [task] = [t for t in tasks if t.get("name") == SD_TASK]
    play = {
        "hosts": "localhost",
        "gather_facts": False,
        "vars": {
            "ovms_client_data_dir": str(tmp_path / "data"),
            "ovms_client_profiles": profiles,
            "ovms_client_container_prefix": "ovms-client",
            "ovms_client_metrics_port": 9464,
        },
        "tasks": [task],
    }
    return run_playbook(tmp_path, play, json_callback=True)


@pytest.mark.slow
@pytest.mark.skipif(os.geteuid() != 0, reason="the task makes a root-owned file: run as root")
def test_the_role_writes_the_targets_once_and_again_when_the_instances_change(tmp_path):
    (tmp_path / "data" / "metrics").mkdir(parents=True)
    sd = tmp_path / "data" / "metrics" / "sd.json"
    one = [{"name": "person-detection", "instances": 1}]
    runs = []
    for profiles in (one, one, [{"name": "person-detection", "instances": 2}]):
        done = _sd_play(tmp_path, profiles)
        assert done.returncode == 0, done.stdout[-3000:]
        runs.append((task_results(done)[SD_TASK]["changed"], json.loads(sd.read_text())))
    assert [changed for changed, _ in runs] == [True, False, True]
    assert runs[0][1] == json.loads(SD.ovms_client_metrics_sd(one, "ovms-client", 9464))
    assert [entry["targets"] for entry in runs[2][1]] == [
        ["ovms-client-person-detection-1:9464"],
        ["ovms-client-person-detection-2:9464"],
    ]
    st = sd.stat()
    assert (st.st_mode & 0o7777, st.st_uid, st.st_gid) == (0o644, 0, 0)
