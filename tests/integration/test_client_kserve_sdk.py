"""The client against the kserve SDK's own model server (PyPI `kserve`), which answers KServe v2 gRPC
with the typed contents fields unless told to send raw_output_contents: the project's person-detection
profile, unchanged, reads the same detections in both forms; an answer it cannot read (one output a
value short) drops each frame with a reason naming the model and the output, and the server stays up.

The SDK pins its own grpcio, protobuf and fastapi, so it lives in a virtual environment of its own,
never the project's .venv: `<launcher cache>/venvs/kserve-sdk-<version>` (launcher.paths.cache_dir(),
OVMS_LAUNCHER_CACHE overrides it), made on first use with `pip install kserve==<version>` (about 30 s
and 450 MB) under a cache lock, so parallel sessions build it once; a marker file written last tells a
finished venv from one a crash left behind (which is rebuilt). The install needs the package index pip
is configured with (PyPI): when it cannot be reached the test fails and says so — set
OVMS_TEST_OFFLINE=1 to skip it instead on a machine without the index (a venv already cached is used).

The model server (tests/integration/kserve_sdk_model.py) runs with that venv's python on free loopback
ports and is stopped at teardown; the client runs as `python -m client` from the project's .venv.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc as grpcclient

from launcher.media import ensure_sample_media
from launcher.models.repository import cache_lock
from launcher.paths import cache_dir

pytestmark = [pytest.mark.models, pytest.mark.slow]

KSERVE_VERSION = "0.21.0"
ROOT = Path(__file__).resolve().parents[2]
PROFILE = ROOT / "profiles" / "person-detection"
SERVER_SCRIPT = Path(__file__).with_name("kserve_sdk_model.py")
MODEL = "person-detection"
FRAMES = 12
OUTPUTS = {
    "detection_boxes:0": [1, 100, 4],
    "detection_classes:0": [1, 100],
    "detection_scores:0": [1, 100],
    "num_detections:0": [1],
}
# what kserve_sdk_model.py answers: (y_min, x_min, y_max, x_max), class, score; the profile keeps
# scores of at least 0.5, best first
DETECTIONS = [((0.10, 0.20, 0.90, 0.45), 1, 0.875), ((0.25, 0.55, 0.75, 0.80), 1, 0.625)]
MARKER = ".ovms-launcher-complete"


# --- the SDK's virtual environment --------------------------------------------------------------


def _complete(venv: Path) -> bool:
    marker = venv / MARKER
    python = venv / "bin" / "python"
    return marker.is_file() and marker.read_text().strip() == KSERVE_VERSION and python.exists()


def _run(command: list[str], what: str, timeout: float) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(
            command, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL, check=False
        )
    except subprocess.TimeoutExpired as exc:
        output = (exc.stdout or "") + (exc.stderr or "")
        output = output if isinstance(output, str) else output.decode(errors="replace")
        pytest.fail(f"{what}: no result after {timeout:.0f} s\n{output[-3000:]}")


def sdk_python() -> Path:
    """The python of the cached kserve SDK venv, made now if missing (under a lock: parallel sessions
    wait for one build). Fails with what pip said when the package index is unreachable."""
    name = f"kserve-sdk-{KSERVE_VERSION}"
    venv = cache_dir() / "venvs" / name
    if _complete(venv):
        return venv / "bin" / "python"
    if os.environ.get("OVMS_TEST_OFFLINE") == "1":
        pytest.skip(f"OVMS_TEST_OFFLINE=1 and no kserve SDK venv cached at {venv} (it is made with pip)")
    venv.parent.mkdir(parents=True, exist_ok=True)
    with cache_lock(f"venv-{name}"):
        if not _complete(venv):
            shutil.rmtree(venv, ignore_errors=True)  # what an interrupted build left
            made = _run([sys.executable, "-m", "venv", str(venv)], f"python -m venv {venv}", 300)
            if made.returncode != 0:
                pytest.fail(f"cannot create the venv {venv}:\n{(made.stdout + made.stderr)[-3000:]}")
            install = [
                str(venv / "bin" / "python"),
                "-m",
                "pip",
                "install",
                "--disable-pip-version-check",
                "--no-input",
                "--root-user-action=ignore",
                "--progress-bar=off",
                "--retries=3",
                "--timeout=60",
                f"kserve=={KSERVE_VERSION}",
            ]
            installed = _run(install, f"pip install kserve=={KSERVE_VERSION}", 600)
            if installed.returncode != 0:
                shutil.rmtree(venv, ignore_errors=True)
                pytest.fail(
                    f"cannot install kserve=={KSERVE_VERSION} into {venv} (pip exit {installed.returncode}): "
                    "this test needs the package index pip is configured with (PyPI) to make the kserve "
                    "SDK's venv once; set OVMS_TEST_OFFLINE=1 to skip it on a machine without it\n"
                    f"{(installed.stdout + installed.stderr)[-3000:]}"
                )
            (venv / MARKER).write_text(f"{KSERVE_VERSION}\n")
    return venv / "bin" / "python"


@pytest.fixture(scope="module")
def sdk() -> Path:
    return sdk_python()


# --- the SDK's model server ---------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


LOOPBACK = {"0100007F", "00000000000000000000000001000000", "0000000000000000FFFF00000100007F"}


def _listening(port: int) -> set[str]:
    """The local addresses (hex, as /proc/net/tcp* gives them) of the sockets listening on a port."""
    addresses = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            address, _, hex_port = fields[1].partition(":")
            if fields[3] == "0A" and int(hex_port, 16) == port:
                addresses.add(address)
    return addresses


@dataclass
class SdkServer:
    mode: str
    grpc_port: int
    http_port: int
    proc: subprocess.Popen
    log: Path

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def logs(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]


@pytest.fixture
def sdk_server(sdk: Path, tmp_path: Path) -> Iterator[Callable[[str], SdkServer]]:
    """Starts kserve_sdk_model.py in a mode; every server started is stopped at teardown."""
    started: list[SdkServer] = []

    def start(mode: str) -> SdkServer:
        grpc_port, http_port = _free_port(), _free_port()
        log = tmp_path / f"kserve-{mode}.log"
        command = [str(sdk), str(SERVER_SCRIPT), "--mode", mode]
        command += ["--grpc_port", str(grpc_port), "--http_port", str(http_port)]
        with log.open("wb") as out:
            proc = subprocess.Popen(
                command,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=tmp_path,
            )
        server = SdkServer(mode, grpc_port, http_port, proc, log)
        started.append(server)
        client = grpcclient.InferenceServerClient(server.address)
        try:
            deadline = time.monotonic() + 120
            while True:
                if proc.poll() is not None:
                    pytest.fail(f"the kserve SDK server exited ({proc.returncode}):\n{server.logs()}")
                try:
                    if client.is_model_ready(MODEL, client_timeout=2):
                        break
                except Exception:
                    pass
                if time.monotonic() > deadline:
                    pytest.fail(
                        f"the kserve SDK server did not serve {MODEL!r} within 120 s:\n{server.logs()}"
                    )
                time.sleep(0.2)
        finally:
            client.close()
        for port in (grpc_port, http_port):
            addresses = _listening(port)
            assert addresses and addresses <= LOOPBACK, (port, addresses, "must listen on loopback only")
        return server

    try:
        yield start
    finally:
        for server in started:
            if server.proc.poll() is None:
                server.proc.send_signal(signal.SIGTERM)
                try:
                    server.proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    server.proc.kill()
                    server.proc.wait()


def _answer(server: SdkServer) -> grpcclient.service_pb2.ModelInferResponse:
    """The server's answer to one request, as the protobuf on the wire."""
    client = grpcclient.InferenceServerClient(server.address)
    try:
        image = grpcclient.InferInput("image_tensor:0", [1, 300, 300, 3], "UINT8")
        image.set_data_from_numpy(np.zeros((1, 300, 300, 3), np.uint8))
        return client.infer(MODEL, [image], client_timeout=30).get_response()
    finally:
        client.close()


# --- the client ---------------------------------------------------------------------------------


@dataclass
class ClientRun:
    returncode: int
    output: str
    records: list[dict]
    stats: list[dict]


def run_client(server: SdkServer, results: Path) -> ClientRun:
    """The project's person-detection profile against the server, for FRAMES frames of the sample video."""
    media = ensure_sample_media()
    results.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OVMS_", "CLIENT_"))}
    env.update(
        OVMS_ADDRESS=server.address,
        OVMS_RESULTS_DIR=str(results),
        CLIENT_INPUT=str(media.video),
        CLIENT_STATS_INTERVAL_S="1",
        CLIENT_SNAPSHOT_INTERVAL_S="0",
    )
    done = subprocess.run(
        [sys.executable, "-m", "client", "--profile", str(PROFILE), "--max-frames", str(FRAMES)],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        stdin=subprocess.DEVNULL,
        check=False,
    )

    def lines(name: str) -> list[dict]:
        path = results / name
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []

    output = (done.stdout + done.stderr)[-4000:]
    return ClientRun(done.returncode, output, lines("detections.jsonl"), lines("stats.jsonl"))


def expected_detections(width: int, height: int) -> list[dict]:
    return [
        {
            "label": "person",
            "class_id": label,
            "score": score,
            "box": [x_min * width, y_min * height, x_max * width, y_max * height],
        }
        for (y_min, x_min, y_max, x_max), label, score in DETECTIONS
    ]


def assert_form(answer: grpcclient.service_pb2.ModelInferResponse, mode: str) -> None:
    """The server really answered in the form the test is about."""
    assert [o.name for o in answer.outputs] == list(OUTPUTS)
    sizes = {o.name: len(o.contents.fp32_contents) for o in answer.outputs}
    needed = {name: math.prod(shape) for name, shape in OUTPUTS.items()}
    if mode == "raw":
        assert [len(raw) for raw in answer.raw_output_contents] == [4 * n for n in needed.values()]
        assert set(sizes.values()) == {0}
    else:
        assert len(answer.raw_output_contents) == 0
        if mode == "typed":
            assert sizes == needed
        else:
            assert sizes == {**needed, "detection_scores:0": 99}


@pytest.mark.parametrize("mode", ["typed", "raw"])
def test_the_client_reads_the_sdk_server_in_both_forms(mode, sdk_server, tmp_path):
    server = sdk_server(mode)
    assert_form(_answer(server), mode)

    run = run_client(server, tmp_path / "results")
    assert run.returncode == 0, run.output
    assert len(run.records) == FRAMES, run.output
    assert [r["status"] for r in run.records] == ["ok"] * FRAMES, run.records[0].get("reason", run.output)
    for record in run.records:
        found, expected = record["detections"], expected_detections(record["width"], record["height"])
        assert [(d["label"], d["class_id"], d["score"]) for d in found] == [
            (e["label"], e["class_id"], e["score"]) for e in expected
        ]
        for d, e in zip(found, expected, strict=True):
            assert d["box"] == pytest.approx(e["box"], abs=0.051), (d, e)  # JSON keeps 0.1 px
    final = run.stats[-1]
    assert final["final"] is True, run.output
    assert (final["server"], final["outages"], final["errors"], final["dropped"], final["frames"]) == (
        "up",
        0,
        0,
        0,
        FRAMES,
    ), final


def test_an_answer_the_client_cannot_read_drops_the_frame_and_the_server_stays_up(sdk_server, tmp_path):
    server = sdk_server("short")
    assert_form(_answer(server), "short")

    run = run_client(server, tmp_path / "results")
    assert run.returncode == 0, run.output
    assert len(run.records) == FRAMES, run.output
    assert {r["status"] for r in run.records} == {"dropped"}, run.output
    reasons = {r["reason"] for r in run.records}
    assert reasons == {
        f"rejected: model {MODEL!r} output 'detection_scores:0': "
        "shape [1, 100] FP32 needs 100 values, fp32_contents holds 99"
    }, reasons
    final = run.stats[-1]
    assert final["final"] is True, run.output
    assert (final["server"], final["outages"], final["errors"], final["dropped"], final["frames"]) == (
        "up",
        0,
        FRAMES,
        FRAMES,
        0,
    ), final
    assert all(s["server"] == "up" for s in run.stats), run.stats
    assert server.proc.poll() is None, "the server stopped"
