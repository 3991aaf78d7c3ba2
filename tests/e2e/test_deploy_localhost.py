"""The main job end to end: `launcher deploy -i inventories/localhost` on the real Docker engine.

The localhost inventory is deployed as shipped, with one more inventory layered on top that renames
this test's containers, network and data folders, so a deploy already running on the machine is
never touched. Server image: the OVMS test double (the real image cannot be pulled here).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import requests

from testbed.isolation import write_isolation
from testbed.paths import PROJECT_ROOT

pytestmark = [pytest.mark.docker, pytest.mark.slow]

LAUNCHER = [str(Path(sys.executable).parent / "launcher")]
DOUBLE = "ovms-launcher/ovms-double:dev"


def _launcher(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "160"}
    return subprocess.run(
        [*LAUNCHER, *args], capture_output=True, text=True, timeout=timeout, cwd=PROJECT_ROOT, env=env
    )


def _summary(proc: subprocess.CompletedProcess) -> dict:
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("{"):
            obj = json.loads(line)
            if obj.get("type") == "summary" or "hosts" in obj:
                return obj
    raise AssertionError(f"no JSON summary in output:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")


def _docker(*args: str) -> str:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=False).stdout


def _connects_as(user: str, host: str, port: int) -> bool:
    """Whether `user` on this machine can open a TCP connection to host:port (bash's /dev/tcp)."""
    probe = ["runuser", "-u", user, "--", "bash", "-c", f"exec 3<>/dev/tcp/{host}/{port}"]
    return subprocess.run(probe, capture_output=True, timeout=30, check=False).returncode == 0


def _output_rules() -> str:
    return subprocess.run(["iptables", "-S", "OUTPUT"], capture_output=True, text=True, check=True).stdout


@pytest.fixture
def deployment(tmp_path):
    tag = f"ovms-e2e-{uuid.uuid4().hex[:6]}"
    override = write_isolation(tmp_path / "override", tag, tmp_path)
    inventory = ["-i", str(PROJECT_ROOT / "inventories" / "localhost"), "-i", str(override)]
    yield tag, inventory, tmp_path
    _launcher("destroy", *inventory, "--yes")
    for name in _docker("ps", "-aq", "--filter", f"name={tag}").split():
        _docker("rm", "-f", name)
    _docker("network", "rm", tag)


def test_deploy_status_redeploy_destroy(deployment):
    tag, inventory, data = deployment
    extra = ["-e", f"ovms_server_image={DOUBLE}"]

    first = _launcher("deploy", *inventory, *extra, "--json")
    assert first.returncode == 0, first.stdout[-4000:] + first.stderr[-4000:]
    summary = _summary(first)
    host = summary["hosts"][0]
    assert host["models"]["person-detection"]["1"] == "AVAILABLE"
    assert {c["name"] for c in host["containers"]} == {f"{tag}-server", f"{tag}-client-person-detection-1"}

    detections = data / "client" / "results" / "person-detection-1" / "detections.jsonl"
    deadline = time.monotonic() + 60
    people = []
    while time.monotonic() < deadline and not people:
        if detections.exists():
            for line in detections.read_text().splitlines():
                record = json.loads(line)
                people += [d for d in record.get("detections", []) if d["label"] == "person"]
        time.sleep(1)
    assert people, f"no person detection in {detections} within 60 s"
    assert max(d["score"] for d in people) >= 0.8

    deadline = time.monotonic() + 60
    while True:
        status = _launcher("status", *inventory, "--json")
        assert status.returncode == 0, status.stdout[-3000:] + status.stderr[-3000:]
        shost = _summary(status)["hosts"][0]
        clients = shost.get("clients") or []
        served = (shost.get("metrics") or {}).get("person-detection") or {}
        if clients and (clients[0].get("fps") or 0) > 0 and (served.get("rate") or 0) > 0:
            break
        assert time.monotonic() < deadline, f"status never showed FPS and a request rate > 0: {shost}"
        time.sleep(3)
    assert shost["models"]["person-detection"]["1"] == "AVAILABLE"
    # the server's own count, from its /metrics: KServe inferences, no failure, inference time
    assert served["requests"] > 0 and served["failures"] == 0 and served["inference_ms"] > 0

    # the client speaks KServe only: the server counted ModelInfer successes and no TFS request
    ip = _docker(
        "inspect", "--format", f'{{{{(index .NetworkSettings.Networks "{tag}").IPAddress}}}}', f"{tag}-server"
    )
    text = requests.get(f"http://{ip.strip()}:8000/metrics", timeout=10).text
    labels = 'api="KServe",interface="gRPC",method="ModelInfer",name="person-detection",version="1"'
    infer = f"ovms_requests_success{{{labels}}}"
    count = next(float(line.split()[-1]) for line in text.splitlines() if line.startswith(infer))
    assert count > 0, text
    assert "TensorFlowServing" not in text
    # any other user of this machine is refused at that address (ovms_server_local_access: root)
    if os.geteuid() == 0:
        assert _connects_as("nobody", ip.strip(), 8000) is False
        assert _connects_as("root", ip.strip(), 8000) is True
        assert f"ovms-launcher local-access {tag}" in _output_rules()

    second = _launcher("deploy", *inventory, *extra, "--json")
    assert second.returncode == 0, second.stdout[-4000:] + second.stderr[-4000:]
    assert sum(h["changed"] for h in _summary(second)["hosts"]) == 0

    gone = _launcher("destroy", *inventory, "--yes")
    assert gone.returncode == 0, gone.stdout[-3000:] + gone.stderr[-3000:]
    assert _docker("ps", "-aq", "--filter", f"name={tag}").split() == []
    assert _docker("network", "ls", "-q", "--filter", f"name={tag}").split() == []
    if os.geteuid() == 0:
        assert f"ovms-launcher local-access {tag}" not in _output_rules()
    assert (data / "server" / "models" / "person-detection" / "1" / "model.xml").is_file()
    assert detections.is_file() and detections.stat().st_size > 0


def test_deploy_without_a_loadable_server_image_changes_nothing(deployment):
    tag, inventory, data = deployment
    proc = _launcher("deploy", *inventory, "-e", "ovms_server_image=ovms-launcher-test/absent:none")
    assert proc.returncode == 1
    text = proc.stdout + proc.stderr
    assert "ovms-launcher-test/absent:none" in text
    assert "ovms_server_image=ovms-launcher/ovms-double:dev" in text
    assert _docker("ps", "-aq", "--filter", f"name={tag}").split() == []
    assert not (data / "server").exists()
