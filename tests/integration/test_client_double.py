"""The client against the OVMS double: detections, stats and snapshots; surviving a server outage.

The client runs in its container (`ovms-launcher/client:dev`, on the double's network) when that
image exists, else as a subprocess from the venv; OVMS_CLIENT_RUNNER=subprocess|container forces one.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import pytest
import requests
from double_harness import copy_model, local_mode

from launcher.media import ensure_sample_media
from launcher.models import prepare_models
from testbed import dockerutil
from testbed.nginx import conf_template

pytestmark = [pytest.mark.docker, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
CLIENT_IMAGE = os.environ.get("OVMS_CLIENT_IMAGE", "ovms-launcher/client:dev")


def _shared_dir(prefix: str, mode: int = 0o755) -> Path:
    """A temp dir the containers' users can use (pytest's tmp_path is private to root)."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    path.chmod(mode)
    return path


@dataclass
class ClientRun:
    """One client process (subprocess or container) with its results directory."""

    results: Path
    proc: subprocess.Popen | None = None
    container: str | None = None
    log_path: Path | None = None
    cleanup: list[Path] = field(default_factory=list)

    def alive(self) -> bool:
        if self.proc is not None:
            return self.proc.poll() is None
        assert self.container is not None
        return dockerutil.container_running(self.container)

    def wait(self, timeout: float) -> int:
        if self.proc is not None:
            return self.proc.wait(timeout=timeout)
        assert self.container is not None
        out = dockerutil.docker("wait", self.container, timeout=timeout)
        return int(out.stdout.strip())

    def terminate(self) -> None:
        """SIGTERM, as `docker stop` or a service manager would send it."""
        if self.proc is not None:
            self.proc.send_signal(signal.SIGTERM)
        elif self.container is not None:
            dockerutil.docker("kill", "--signal", "TERM", self.container)

    def logs(self) -> str:
        if self.log_path is not None:
            return self.log_path.read_text(errors="replace")
        return dockerutil.logs(self.container) if self.container else ""

    def records(self) -> list[dict]:
        path = self.results / "detections.jsonl"
        if not path.exists():
            return []
        lines = path.read_text().splitlines()
        return [json.loads(line) for line in lines if line.endswith("}")]

    def stats(self) -> list[dict]:
        path = self.results / "stats.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []

    def remove(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self.container is not None:
            dockerutil.remove_container(self.container)
        for path in [*self.cleanup, self.results]:
            shutil.rmtree(path, ignore_errors=True)
        if self.log_path is not None:
            self.log_path.unlink(missing_ok=True)


def _use_container() -> bool:
    choice = os.environ.get("OVMS_CLIENT_RUNNER", "")
    if choice in ("subprocess", "container"):
        return choice == "container"
    return not local_mode() and dockerutil.image_exists(CLIENT_IMAGE)


@pytest.fixture
def client_runner():
    runs: list[ClientRun] = []
    media = ensure_sample_media()

    def start(
        server,
        profile: str,
        duration: float,
        *,
        address: str | None = None,
        tls: dict[str, str] | None = None,
        **settings: str,
    ) -> ClientRun:
        """Start a client; `address`/`tls` (OVMS_TLS_* values) make it a subprocess dialling them."""
        results = _shared_dir("ovms-client-results-", 0o777)
        env = {"CLIENT_STATS_INTERVAL_S": "1", "CLIENT_SNAPSHOT_INTERVAL_S": "2", **settings}
        args = ["--profile", "PROFILE", "--duration", str(duration)]
        if address is None and _use_container():
            run = ClientRun(results)
            runs.append(run)
            media_dir = _shared_dir("ovms-client-media-")
            shutil.copy(media.video, media_dir / "sample.mp4")
            (media_dir / "sample.mp4").chmod(0o644)
            run.cleanup.append(media_dir)
            run.container = dockerutil.unique_name("ovms-client")
            env_flags = [f for key, value in env.items() for f in ("-e", f"{key}={value}")]
            dockerutil.docker(
                "run",
                "-d",
                "--name",
                run.container,
                "--label",
                dockerutil.TEST_LABEL,
                "--network",
                server.network,
                "--read-only",
                "--tmpfs",
                "/tmp",
                "-v",
                f"{ROOT / 'profiles' / profile}:/profile:ro",
                "-v",
                f"{media_dir}:/media:ro",
                "-v",
                f"{results}:/results",
                "-e",
                f"OVMS_ADDRESS={server.container}:9000",
                "-e",
                "OVMS_RESULTS_DIR=/results",
                *env_flags,
                CLIENT_IMAGE,
                *[a.replace("PROFILE", "/profile") for a in args],
            )
            return run
        log_path = Path(tempfile.mkstemp(prefix="ovms-client-", suffix=".log")[1])
        run = ClientRun(results, log_path=log_path)
        runs.append(run)
        full_env = {
            **os.environ,
            "OVMS_ADDRESS": address or server.grpc_address,
            "OVMS_RESULTS_DIR": str(results),
            **(tls or {}),
            "CLIENT_INPUT": str(media.video),
            **env,
        }
        with log_path.open("wb") as log:
            run.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "client",
                    *[a.replace("PROFILE", str(ROOT / "profiles" / profile)) for a in args],
                ],
                env=full_env,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
            )
        return run

    try:
        yield start
    finally:
        for run in runs:
            run.remove()


@pytest.fixture
def double(ovms_double):
    """The double serving both prepared models."""
    prepared = {m.name: m for m in prepare_models(names=["person-detection", "face-detection"])}
    repo = ovms_double.new_repository()
    config = []
    for name, model in prepared.items():
        copy_model(model.path, repo, name, model.version)
        config.append(
            {
                "config": {
                    "name": name,
                    "base_path": f"/models/{name}" if not local_mode() else str(repo / name),
                }
            }
        )
    (repo / "config.json").write_text(json.dumps({"model_config_list": config}))
    (repo / "config.json").chmod(0o644)
    return ovms_double(repo, "--metrics_enable")


def _wait_for(predicate, timeout: float, what: str, run: ClientRun) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        if not run.alive():
            raise AssertionError(f"the client exited while waiting for {what}:\n{run.logs()[-3000:]}")
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}:\n{run.logs()[-3000:]}")


def test_client_detects_people_and_reports_stats_and_snapshots(double, client_runner):
    run = client_runner(double, "person-detection", duration=10)
    assert run.wait(timeout=90) == 0, run.logs()[-3000:]
    records = run.records()
    ok = [r for r in records if r["status"] == "ok"]
    assert len(ok) >= 50, run.logs()[-3000:]  # 10 s at the profile's 15 FPS, minus start-up
    assert [r["frame"] for r in records] == list(range(len(records)))
    with_people = [
        r for r in ok if any(d["label"] == "person" and d["score"] >= 0.5 for d in r["detections"])
    ]
    assert len(with_people) >= 0.8 * len(ok)  # a person is visible in every frame of the sample video
    box = with_people[0]["detections"][0]["box"]
    assert (
        0 <= box[0] < box[2] <= with_people[0]["width"] and 0 <= box[1] < box[3] <= with_people[0]["height"]
    )
    stats = run.stats()
    assert stats and stats[-1]["final"] is True
    assert max(s["fps"] for s in stats) > 0
    assert stats[-1]["frames"] == len(ok)
    assert {
        "fps",
        "latency_p50_ms",
        "latency_p95_ms",
        "in_flight",
        "dropped",
        "errors",
        "frames",
        "ts",
    } <= set(stats[-1])
    snapshots = sorted((run.results / "snapshots").glob("stream0-*.jpg"))
    assert snapshots, run.logs()[-3000:]
    image = cv2.imread(str(snapshots[-1]))
    assert image is not None and image.shape[0] > 0


def test_client_survives_a_server_outage_and_resumes(double, client_runner):
    run = client_runner(double, "person-detection", duration=120)
    _wait_for(lambda: sum(r["status"] == "ok" for r in run.records()) >= 20, 90, "first results", run)
    address = double.grpc_address
    double.stop()
    down_at = time.time()
    time.sleep(5)
    assert run.alive(), run.logs()[-3000:]
    double.start()  # returns once the double is ready again
    back_at = time.time()
    assert double.grpc_address == address, "the double came back at another address"

    def resumed() -> bool:
        return any(r["status"] == "ok" and r["ts"] > back_at for r in run.records())

    _wait_for(resumed, 30, "results after the outage", run)
    run.terminate()  # SIGTERM: finish in-flight work, flush, exit 0
    assert run.wait(timeout=60) == 0, run.logs()[-3000:]

    records = run.records()
    assert [r["frame"] for r in records] == list(range(len(records)))
    dropped = [r for r in records if r["status"] == "dropped"]
    assert dropped, "no frame was dropped during the outage"
    assert all(down_at - 2 <= r["ts"] <= back_at + 10 for r in dropped)
    first_ok_after = next(r for r in records if r["status"] == "ok" and r["ts"] > dropped[-1]["ts"])
    assert first_ok_after["ts"] - back_at <= 10.0, (first_ok_after["ts"] - back_at, run.logs()[-3000:])
    stats = run.stats()
    assert stats[-1]["dropped"] == len(dropped)
    assert any(s["server"] == "down" for s in stats) and stats[-1]["server"] == "up"
    assert stats[-1]["outages"] >= 1


def test_two_profiles_with_different_models_side_by_side(double, client_runner):
    person = client_runner(double, "person-detection", duration=8)
    face = client_runner(double, "face-detection", duration=8)
    assert person.wait(timeout=90) == 0, person.logs()[-3000:]
    assert face.wait(timeout=90) == 0, face.logs()[-3000:]
    person_ok = [r for r in person.records() if r["status"] == "ok"]
    face_ok = [r for r in face.records() if r["status"] == "ok"]
    assert person_ok and face_ok
    assert {d["label"] for r in person_ok for d in r["detections"]} == {"person"}
    faces = [d for r in face_ok for d in r["detections"]]
    assert faces and all(d["label"] == "face" and len(d["keypoints"]) == 6 for d in faces)
    assert {r["profile"] for r in face_ok} == {"face-detection"}


# --- TLS: nginx terminating mutual TLS in front of the double (the project's remote setup) ---------

NGINX_GRPC_CONF = conf_template(
    """\
    client_body_buffer_size 4m;
    upstream ovms {{ server {upstream}; keepalive 16; }}
    server {{
        listen 127.0.0.1:{port} ssl http2;
        ssl_certificate {pki}/servers/localhost/server.pem;
        ssl_certificate_key {pki}/servers/localhost/server.key;
        ssl_client_certificate {pki}/ca-bundle.pem;
        ssl_verify_client on;
        ssl_protocols TLSv1.3;
        grpc_buffer_size 1m;
        location / {{ grpc_pass grpc://ovms; }}
    }}
"""
)


@pytest.fixture
def tls_front(double):
    """Certificates from `launcher.pki` and nginx on a loopback port proxying gRPC to the double."""
    from launcher.pki import Kind, PkiLayout, generate
    from launcher.pki.plan import client_spec, server_spec

    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(nginx).exists():
        pytest.skip("nginx binary not installed (apt-get install nginx-light)")
    base = _shared_dir("ovms-client-tls-")
    layout = PkiLayout(base / "certs")
    generate(layout, [server_spec("localhost", ["127.0.0.1"], []), client_spec("camera-1")])
    other = PkiLayout(base / "other-ca")
    generate(other, [client_spec("camera-1")])
    prefix = base / "nginx"
    (prefix / "tmp").mkdir(parents=True)
    (prefix / "tmp").chmod(0o777)
    process = None
    try:
        for _attempt in range(3):
            with socket.socket() as sock:
                sock.bind(("127.0.0.1", 0))
                port = sock.getsockname()[1]
            conf = prefix / "nginx.conf"
            conf.write_text(
                NGINX_GRPC_CONF.format(
                    prefix=prefix, port=port, pki=layout.root, upstream=double.grpc_address
                )
            )
            process = subprocess.Popen(
                [nginx, "-p", str(prefix), "-c", str(conf), "-e", str(prefix / "error.log")],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and process.poll() is None:
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=1):
                        break
                except OSError:
                    time.sleep(0.05)
            if process.poll() is None:
                break
        assert process is not None and process.poll() is None, (prefix / "error.log").read_text()
        yield {
            "address": f"127.0.0.1:{port}",
            "good": {
                "OVMS_TLS_CA": str(layout.bundle),
                "OVMS_TLS_CERT": str(layout.leaf_cert(Kind.CLIENT, "camera-1")),
                "OVMS_TLS_KEY": str(layout.leaf_key(Kind.CLIENT, "camera-1")),
            },
            "other_ca": {
                "OVMS_TLS_CA": str(layout.bundle),
                "OVMS_TLS_CERT": str(other.leaf_cert(Kind.CLIENT, "camera-1")),
                "OVMS_TLS_KEY": str(other.leaf_key(Kind.CLIENT, "camera-1")),
            },
            "log": prefix / "error.log",
        }
    finally:
        if process is not None and process.poll() is None:
            process.terminate()
            process.wait(timeout=15)
        shutil.rmtree(base, ignore_errors=True)


@pytest.mark.nginx
def test_client_over_mutual_tls(double, client_runner, tls_front):
    run = client_runner(
        double, "person-detection", duration=6, address=tls_front["address"], tls=tls_front["good"]
    )
    assert run.wait(timeout=90) == 0, run.logs()[-3000:]
    ok = [r for r in run.records() if r["status"] == "ok"]
    assert ok, run.logs()[-3000:]
    assert any(d["label"] == "person" for r in ok for d in r["detections"])
    assert "(TLS)" in run.logs()


@pytest.mark.nginx
def test_client_with_a_certificate_of_another_ca_keeps_waiting(double, client_runner, tls_front):
    run = client_runner(
        double, "person-detection", duration=60, address=tls_front["address"], tls=tls_front["other_ca"]
    )
    _wait_for(lambda: "waiting for model" in run.logs(), 30, "the client to report it is waiting", run)
    time.sleep(2)
    assert run.alive()
    run.terminate()
    assert run.wait(timeout=30) == 0, run.logs()[-3000:]
    assert run.records() == []
    # nginx completes the handshake, then answers HTTP 400 for a client certificate it does not trust
    assert "Received http2 header with status: 400" in run.logs()


# --- KServe API choices: encoded frames, refused frames, the TFS API of older servers ---------------


def test_jpeg_frames_find_the_person(double, client_runner):
    run = client_runner(double, "person-detection", duration=6, CLIENT_ENCODING="jpeg")
    assert run.wait(timeout=90) == 0, run.logs()[-3000:]
    ok = [r for r in run.records() if r["status"] == "ok"]
    assert len(ok) >= 30, run.logs()[-3000:]
    scores = [d["score"] for r in ok for d in r["detections"] if d["label"] == "person"]
    assert scores and max(scores) >= 0.8
    assert "kserve API, jpeg frames" in run.logs()


class _CorruptEveryFifth:
    """The client's own KServe adapter, with every fifth frame's JPEG replaced by bytes no decoder reads."""

    def __init__(self, deployment, profile, stage=None) -> None:
        from client.kserve import KServeServer

        self.inner = KServeServer(deployment, profile, stage)
        self.address = self.inner.address
        self.sent = 0
        self.corrupted = 0

    def predict(self, payload):
        self.sent += 1
        if self.sent % 5 == 0:
            self.corrupted += 1
            payload = b"\xff\xd8\xff\xe0 this is not a JPEG" + bytes(64)
        return self.inner.predict(payload)

    def wait_for_metadata(self, stop, backoff):
        return self.inner.wait_for_metadata(stop, backoff)

    def reconnect(self) -> None:
        self.inner.reconnect()


def test_a_corrupt_jpeg_frame_is_an_error_and_the_stream_goes_on(double, tmp_path):
    """The server answers the corrupt image (UNKNOWN "Unknown error", as OVMS 2026.3's gRPC table has
    no code for IMAGE_PARSING_FAILED) and keeps serving; the client counts an error, no outage."""
    from client.app import RunOptions, run

    results = tmp_path / "results"
    servers: list[_CorruptEveryFifth] = []

    def factory(deployment, profile, stage):
        servers.append(_CorruptEveryFifth(deployment, profile, stage))
        return servers[-1]

    environ = {
        "OVMS_ADDRESS": double.grpc_address,
        "OVMS_RESULTS_DIR": str(results),
        "CLIENT_ENCODING": "jpeg",
        "CLIENT_INPUT": str(ensure_sample_media().video),
        "CLIENT_STATS_INTERVAL_S": "1",
    }
    outcome: list[int] = []
    # a thread of its own: the client installs signal handlers only on the main thread
    worker = threading.Thread(
        target=lambda: outcome.append(
            run(RunOptions(ROOT / "profiles" / "person-detection", max_frames=40), environ, factory)
        )
    )
    worker.start()
    worker.join(timeout=120)
    assert outcome == [0]
    records = [json.loads(line) for line in (results / "detections.jsonl").read_text().splitlines()]
    assert [r["frame"] for r in records] == list(range(40))
    refused = [r for r in records if r["status"] == "dropped"]
    assert len(refused) == servers[0].corrupted == 8
    assert all(r["reason"] == "rejected: UNKNOWN: Unknown error" for r in refused)
    assert all(r["status"] == "ok" for r in records if r not in refused)
    final = [json.loads(line) for line in (results / "stats.jsonl").read_text().splitlines()][-1]
    assert (final["errors"], final["dropped"], final["outages"], final["server"]) == (8, 8, 0, "up")
    text = requests.get(f"{double.rest_url}/metrics", timeout=10).text
    labels = 'api="KServe",interface="gRPC",method="ModelInfer",name="person-detection",version="1"'
    assert f"ovms_requests_fail{{{labels}}} 8\n" in text


def test_a_tfs_profile_against_a_current_server_fails_naming_the_fix(double, client_runner):
    run = client_runner(double, "person-detection", duration=30, CLIENT_API="tfs")
    assert run.wait(timeout=60) == 2, run.logs()[-3000:]
    logs = run.logs()
    assert "does not serve the TensorFlow Serving API" in logs
    assert "removed the TensorFlow Serving API in 2026.3" in logs
    assert "fix: set `api: kserve` in the profile" in logs
    assert run.records() == []


def test_a_tfs_profile_against_an_older_server(ovms_double, client_runner):
    prepared = prepare_models(names=["person-detection"])[0]
    repo = ovms_double.new_repository()
    copy_model(prepared.path, repo, prepared.name, prepared.version)
    base = f"/models/{prepared.name}" if not local_mode() else str(repo / prepared.name)
    (repo / "config.json").write_text(
        json.dumps({"model_config_list": [{"config": {"name": prepared.name, "base_path": base}}]})
    )
    (repo / "config.json").chmod(0o644)
    server = ovms_double(repo, env={"OVMS_DOUBLE_RELEASE": "2025.4"})
    run = client_runner(server, "person-detection", duration=5, CLIENT_API="tfs")
    assert run.wait(timeout=90) == 0, run.logs()[-3000:]
    ok = [r for r in run.records() if r["status"] == "ok"]
    assert len(ok) >= 20 and any(d["label"] == "person" for r in ok for d in r["detections"])
    assert "over TensorFlow Serving" in run.logs()
