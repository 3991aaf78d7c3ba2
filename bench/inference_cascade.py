"""Cascade latency: face-detection -> face-landmarks on a frame with 1 face and with 4 faces, against
face-detection alone. Part of `bash bench/run.sh inference` (bench/inference.py runs it after its own
configurations); `python -m bench.inference_cascade [--smoke]` runs it alone into a scratch folder.

The real client (`python -m client`, synchronous mode: one frame in flight, so a frame's latency is
not queueing behind the previous one) against the OVMS double, both local subprocesses on loopback.
The double serves face-detection and face-landmarks with the inference benchmark's plugin config
(PERFORMANCE_HINT THROUGHPUT) and `--metrics_enable`. Profiles are made from the shipped ones:
`profiles/face-detection` alone, and `profiles/face-mesh` cut to its first two stages (the crop limit
raised to 4 if it were lower); their input is an images folder holding the two frames, each profile
reading one of them (`pattern`) in a loop for a fixed number of frames.

Frames (512x512, made from the sample photo, `launcher media sample`):
  face1.png  the astronaut photo as it is: one face of about 93 px;
  face4.png  the photo's 256x256 region around that face, tiled 2x2: four faces of the same size in
             pixels. (The whole photo tiled 2x2 is 1024x1024, and at the detector's 128x128 input its
             faces are about 12 px: BlazeFace's front model finds none of them.)
Same frame size, same face size: the only difference between the two is the number of crops.

Every round runs the four configurations (detection or cascade, on face1 or face4) in a rotated order;
each ratio is computed within a round, and the reported value is the median of the per-round values,
with their min..max as the spread.

Server-side inference time per request comes from the double's Prometheus metrics: the difference of
`ovms_inference_time_us` _sum and _count per model between the moment the client has written its
warm-up frames and its last frame, i.e. the mean per request over the measured frames
(`ovms_request_time_us` alike for the whole request inside the server's handler; both processes' CPU
counters are read at the same two moments). The frame's critical path is stage 1 (one request) plus
the slowest crop of stage 2. The metrics give each model's mean per request, not per frame: for the
1-face frame the one crop is the slowest, so the mean is exact on average; for the 4-face frame the
slowest of the 4 concurrent crops takes at least their mean, so the mean is a lower bound of the
critical path's model time and `cascade_overhead_over_model_time` an upper bound (it can only make the
cascade look worse, never better).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import yaml

from bench.common import (
    NOISY_SPREAD,
    TARGETS,
    Target,
    calibrate,
    machine_noise,
    median,
    output_dir,
    percentile,
    print_ratios,
    relative_spread,
    spread,
    stop_on_sigterm,
    write_result,
)
from bench.inference_setup import BenchError
from launcher.paths import cache_dir
from testbed.paths import PROJECT_ROOT

NAME = "inference_cascade"
DETECTOR = "face-detection"
LANDMARKS = "face-landmarks"
MODELS = (DETECTOR, LANDMARKS)
CASCADE_PROFILE = PROJECT_ROOT / "profiles" / "face-mesh"
DETECTOR_PROFILE = PROJECT_ROOT / "profiles" / "face-detection"
PLUGIN_CONFIG = {"PERFORMANCE_HINT": "THROUGHPUT"}  # the inference benchmark's double gets the same
# the photo's square around its one face (sample photo, launcher/media.py: 512x512, face ~ (179..272,
# 81..174)): tiled 2x2 it makes a 512x512 frame of four faces as large as the photo's
FACE_REGION = (97, 0, 256)  # x, y, side
FRAMES = {"face1": 1, "face4": 4}  # frame -> faces in it
KINDS = ("detection", "cascade")
CONFIGS: tuple[tuple[str, str], ...] = tuple((kind, frame) for kind in KINDS for frame in FRAMES)
READY_TIMEOUT_S = 120.0
CLIENT_TIMEOUT_S = 300.0

RATIO_ORDER = (
    "cascade_4crops_over_1crop_latency",
    "cascade_overhead_over_model_time",
    "cascade_overhead_over_model_time_1crop",
    "detection_overhead_over_model_time",
    "cascade_1crop_over_detection_latency",
)
RATIO_DIGITS = dict.fromkeys(RATIO_ORDER, 3)
CASCADE_TARGETS: tuple[Target, ...] = tuple(t for t in TARGETS if t.key.startswith("cascade_"))
MODEL_TIME = (
    "mean ovms_inference_time_us per request of each model over the measured frames of a client run "
    "(the metrics read when the client has written its warm-up frames and at its last frame); critical "
    "path = face-detection + face-landmarks, the slowest crop approximated by the mean crop (a lower "
    "bound with 4 crops, so the overhead ratio is an upper bound)"
)
# what each ratio is, for the report (the two targets' texts come from CASCADE_TARGETS)
EXPLAINED = {
    "cascade_overhead_over_model_time_1crop": "the same on the 1-face frame (one crop: the mean is exact)",
    "detection_overhead_over_model_time": "face-detection alone (1-face frame): latency ÷ its inference "
    "time, the cost of one request without a cascade",
    "cascade_1crop_over_detection_latency": "cascade on the 1-face frame ÷ face-detection alone on it",
}


def all_targets() -> tuple[Target, ...]:
    """Every target (bench/common.py lists this scenario's too)."""
    return TARGETS


class CascadeError(BenchError):
    """A step of the cascade scenario failed (not a missed target)."""


@dataclass(frozen=True)
class Plan:
    smoke: bool
    rounds: int
    frames: int  # frames per client run
    warmup_frames: int  # the first frames of each run, left out of its latencies


FULL = Plan(False, 5, 60, 5)
SMOKE = Plan(True, 1, 8, 2)


# --- inputs ---------------------------------------------------------------------------------------
def make_frames(photo: Path, folder: Path) -> dict[str, Path]:
    """face1.png (the photo) and face4.png (its face region tiled 2x2) in `folder`."""
    image = cv2.imread(str(photo), cv2.IMREAD_COLOR)
    if image is None:
        raise CascadeError(f"{photo}: cannot read the sample photo; run `launcher media sample`")
    x, y, side = FACE_REGION
    if image.shape[0] < y + side or image.shape[1] < x + side:
        raise CascadeError(f"{photo}: {image.shape[1]}x{image.shape[0]} is smaller than the face region")
    region = image[y : y + side, x : x + side]
    folder.mkdir(parents=True, exist_ok=True)
    paths = {"face1": folder / "face1.png", "face4": folder / "face4.png"}
    cv2.imwrite(str(paths["face1"]), image)
    cv2.imwrite(str(paths["face4"]), np.tile(region, (2, 2, 1)))
    return paths


def _profile_data(kind: str) -> dict[str, Any]:
    if kind == "detection":
        return yaml.safe_load((DETECTOR_PROFILE / "profile.yaml").read_text())
    data = yaml.safe_load((CASCADE_PROFILE / "profile.yaml").read_text())
    stages = data["stages"][:2]
    if [s["model"]["name"] for s in stages] != list(MODELS):
        raise CascadeError(f"{CASCADE_PROFILE}/profile.yaml: the first two stages are no longer {MODELS}")
    crops = stages[1]["crops"]
    crops["max_crops"] = max(int(crops.get("max_crops", 0)), max(FRAMES.values()))
    data["stages"] = stages
    data["name"] = "face-mesh-2stages"
    return data


def make_profiles(folder: Path, frames_dir: Path) -> dict[tuple[str, str], Path]:
    """One profile folder per configuration: the shipped profile, its input the frame's image."""
    made: dict[tuple[str, str], Path] = {}
    for kind, frame in CONFIGS:
        data = _profile_data(kind)
        data["inputs"] = [
            {"type": "images", "path": str(frames_dir), "pattern": f"{frame}.png", "loop": True}
        ]
        data["target_fps"] = 0
        data["pipeline"] = {**data.get("pipeline", {}), "mode": "sync", "max_in_flight": 1}
        # one stats window over the whole run: the last stats line covers every frame
        data["outputs"] = {"detections": True, "stats_interval_s": 60, "stats_window_s": 3600,
                           "snapshot_interval_s": 0}  # fmt: skip
        target = folder / f"{kind}-{frame}"
        target.mkdir(parents=True)
        (target / "profile.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
        made[(kind, frame)] = target
    return made


def _shown(path: Path) -> str:
    """A path under the launcher's cache as `<cache>/…`: results name no folder of this machine."""
    try:
        return f"<cache>/{path.relative_to(cache_dir()).as_posix()}"
    except ValueError:
        return str(path)


def model_dir(name: str) -> Path:
    """The prepared model's folder (version folders inside); a clear error naming the command."""
    root = cache_dir() / "models" / name
    versions = sorted((p for p in root.glob("[0-9]*") if p.is_dir()), key=lambda p: int(p.name))
    if not versions or not any(versions[-1].glob("*.xml")):
        raise CascadeError(f"{root}: no prepared model; run `launcher models prepare` first")
    return root


# --- the double -----------------------------------------------------------------------------------
def proc_cpu_s(pid: int) -> float | None:
    """CPU seconds (user + system, all threads) of a running process; None once it has gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


_SERIES = re.compile(r"^(ovms_[a-z_]+?)_(sum|count)\{([^}]*)\}\s+([0-9.eE+-]+)$")


def parse_metrics(text: str) -> dict[str, dict[str, tuple[float, float]]]:
    """{family: {model: (sum, count)}} of the histograms in a Prometheus text page (series of one
    model summed over their other labels, e.g. the interface of ovms_request_time_us)."""
    out: dict[str, dict[str, list[float]]] = {}
    for line in text.splitlines():
        match = _SERIES.match(line.strip())
        if not match:
            continue
        family, part, labels, value = match.groups()
        name = re.search(r'name="([^"]*)"', labels)
        if name is None:
            continue
        cell = out.setdefault(family, {}).setdefault(name.group(1), [0.0, 0.0])
        cell[0 if part == "sum" else 1] += float(value)
    return {family: {m: (v[0], v[1]) for m, v in models.items()} for family, models in out.items()}


def gauges(text: str, family: str) -> dict[str, float]:
    """{model: value} of a gauge family (ovms_streams, ovms_infer_req_queue_size)."""
    found: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith(family + "{"):
            name = re.search(r'name="([^"]*)"', line)
            if name:
                found[name.group(1)] = float(line.rsplit(" ", 1)[1])
    return found


@dataclass
class LocalDouble:
    """`python -m ovms_double` serving MODELS on loopback, metrics on its REST port."""

    workdir: Path
    plugin_config: Mapping[str, str] = field(default_factory=lambda: dict(PLUGIN_CONFIG))
    grpc_port: int = 0
    rest_port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None

    def config(self, shown: bool = False) -> dict[str, Any]:
        """The server's config.json; `shown`: as recorded in the results, the cache written `<cache>`
        (no path of this machine in a committed file)."""
        entries = [
            {"name": m, "base_path": _shown(model_dir(m)) if shown else str(model_dir(m))} for m in MODELS
        ]
        if self.plugin_config:
            entries = [{**e, "plugin_config": dict(self.plugin_config)} for e in entries]
        return {"model_config_list": [{"config": e} for e in entries]}

    @property
    def flags(self) -> list[str]:
        return ["--port", str(self.grpc_port), "--grpc_bind_address", "127.0.0.1",
                "--rest_port", str(self.rest_port), "--rest_bind_address", "127.0.0.1",
                "--file_system_poll_wait_seconds", "0", "--metrics_enable"]  # fmt: skip

    def start(self) -> LocalDouble:
        config = self.workdir / "config.json"
        config.write_text(json.dumps(self.config(), indent=2) + "\n")
        self.grpc_port, self.rest_port = _free_port(), _free_port()
        self.log_path = self.workdir / "double.log"
        env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT), "PYTHONUNBUFFERED": "1"}
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "ovms_double", "--config_path", str(config), *self.flags],
                stdout=log, stderr=subprocess.STDOUT, env=env, cwd=self.workdir, start_new_session=True,
            )  # fmt: skip
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise CascadeError(f"the double exited with {self.proc.returncode}:\n{self.logs()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{self.rest_url}/v2/health/ready", timeout=2) as reply:
                    if reply.status == 200:
                        return self
            except OSError:
                pass
            time.sleep(0.2)
        raise CascadeError(f"the double was not ready within {READY_TIMEOUT_S:.0f}s:\n{self.logs()[-3000:]}")

    @property
    def rest_url(self) -> str:
        return f"http://127.0.0.1:{self.rest_port}"

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def metrics(self) -> str:
        with urllib.request.urlopen(f"{self.rest_url}/metrics", timeout=10) as reply:
            return reply.read().decode()

    def cpu_s(self) -> float:
        """CPU seconds the double has used so far (user + system, all its threads)."""
        assert self.proc is not None
        used = proc_cpu_s(self.proc.pid)
        if used is None:
            raise CascadeError(f"the double exited:\n{self.logs()[-3000:]}")
        return used

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path and self.log_path.exists() else ""

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=30)


# --- one client run -------------------------------------------------------------------------------
@dataclass
class Trial:
    kind: str  # detection | cascade
    frame: str  # face1 | face4
    round: int
    frames: int  # ok frames measured (warm-up left out)
    not_ok: int
    p50_ms: float
    p95_ms: float
    min_ms: float
    max_ms: float
    faces: list[int]  # {min, median, max} of stage-1 results per frame
    landmarks: list[int]  # the same for stage-2 results with landmarks
    failed_crops: int
    # per model over the whole run: requests, mean inference / request / queue-wait time in ms
    server: dict[str, dict[str, float]]
    # stats.jsonl's last line, per stage: requests, failures, client-side request p50/p95
    stages: dict[str, dict[str, Any]]
    server_cpu_ms_per_frame: float
    client_cpu_ms_per_frame: float | None = None
    measured_s: float = 0.0  # from the warm-up records to the last one
    critical_model_ms: float = 0.0
    wall_s: float = 0.0

    @property
    def overhead(self) -> float | None:
        return self.p50_ms / self.critical_model_ms if self.critical_model_ms > 0 else None


def _delta(
    before: Mapping[str, Any], after: Mapping[str, Any], family: str, model: str
) -> tuple[float, float]:
    s0, c0 = before.get(family, {}).get(model, (0.0, 0.0))
    s1, c1 = after.get(family, {}).get(model, (0.0, 0.0))
    return s1 - s0, c1 - c0


def server_times(before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, dict[str, float]]:
    """Per model: requests in between, and mean inference, request and queue-wait milliseconds."""
    out: dict[str, dict[str, float]] = {}
    for model in MODELS:
        total, count = _delta(before, after, "ovms_inference_time_us", model)
        if not count:
            continue
        request_total, request_count = _delta(before, after, "ovms_request_time_us", model)
        wait_total, wait_count = _delta(before, after, "ovms_wait_for_infer_req_time_us", model)
        out[model] = {
            "requests": int(count),
            "inference_ms": round(total / count / 1000, 3),
            "request_ms": round(request_total / request_count / 1000, 3) if request_count else 0.0,
            "queue_wait_ms": round(wait_total / wait_count / 1000, 3) if wait_count else 0.0,
        }
    return out


def _bounds(values: Sequence[int]) -> list[int]:
    return [min(values), int(median(values)), max(values)] if values else [0, 0, 0]


@dataclass
class Mark:
    """The moment the client had written `lines` frame records: CPU counters and the double's metrics."""

    lines: int
    at: float
    client_cpu_s: float | None
    server_cpu_s: float
    metrics: dict[str, dict[str, tuple[float, float]]]


class RecordWatch:
    """Counts the records of a growing detections.jsonl (the client writes it line-buffered)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.lines = 0

    def poll(self) -> int:
        try:
            with self.path.open("rb") as handle:
                handle.seek(self.offset)
                chunk = handle.read()
        except FileNotFoundError:
            return self.lines
        self.offset += len(chunk)
        self.lines += chunk.count(b"\n")
        return self.lines


POLL_S = 0.005


def run_trial(double: LocalDouble, profile: Path, kind: str, frame: str, plan: Plan, workdir: Path) -> Trial:
    """One client run of `warmup + frames` frames. The double's metrics and both processes' CPU
    counters are read when the client has written its warm-up records and again at its last record,
    so server times and CPU per frame cover the measured frames only."""
    results = Path(tempfile.mkdtemp(prefix="results-", dir=workdir))
    env = {
        **os.environ,
        "PYTHONPATH": str(PROJECT_ROOT),
        "OVMS_ADDRESS": double.address,
        "OVMS_RESULTS_DIR": str(results),
        "CLIENT_LOG_LEVEL": "WARNING",
    }
    total = plan.frames + plan.warmup_frames
    command = [
        sys.executable,
        "-m",
        "client",
        "--profile",
        str(profile),
        "--max-frames",
        str(total),
        "--sync",
    ]
    log_path = results.with_suffix(".log")
    started = time.monotonic()

    def mark(lines: int, pid: int) -> Mark:
        return Mark(lines, time.monotonic(), proc_cpu_s(pid), double.cpu_s(), parse_metrics(double.metrics()))

    marks: list[Mark] = []
    with log_path.open("wb") as log:
        proc = subprocess.Popen(command, env=env, cwd=PROJECT_ROOT, stdout=log, stderr=subprocess.STDOUT)
    try:
        watch = RecordWatch(results / "detections.jsonl")
        marks.append(mark(0, proc.pid))
        while proc.poll() is None and time.monotonic() - started < CLIENT_TIMEOUT_S:
            lines = watch.poll()
            if len(marks) == 1 and lines >= plan.warmup_frames:
                marks.append(mark(lines, proc.pid))
            if len(marks) == 2 and lines >= total:
                marks.append(mark(lines, proc.pid))
                break
            time.sleep(POLL_S)
        code = proc.wait(timeout=max(1.0, CLIENT_TIMEOUT_S - (time.monotonic() - started)))
    except subprocess.TimeoutExpired as exc:
        raise CascadeError(f"the client ({kind}, {frame}) did not finish in {CLIENT_TIMEOUT_S:.0f}s") from exc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
    wall = time.monotonic() - started
    output = log_path.read_text(errors="replace")
    log_path.unlink(missing_ok=True)
    if code != 0:
        raise CascadeError(f"the client ({kind}, {frame}) exited with {code}:\n{output[-3000:]}")
    if len(marks) < 3:  # the client ended between two polls: the run's end stands for its last record
        marks += [mark(total, proc.pid)] * (3 - len(marks))
    first, last_mark = marks[1], marks[2]
    records = [json.loads(line) for line in (results / "detections.jsonl").read_text().splitlines() if line]
    stats_lines = (results / "stats.jsonl").read_text().splitlines()
    shutil.rmtree(results, ignore_errors=True)
    measured = [r for r in records if r["frame"] >= plan.warmup_frames]
    ok = [r for r in measured if r.get("status") == "ok"]
    if not ok:
        raise CascadeError(f"the client ({kind}, {frame}) delivered no frame: {records[-1:]}")
    latencies = [float(r["latency_ms"]) for r in ok]
    faces = [len(r["detections"]) for r in ok]
    crops = [c for r in ok for d in r["detections"] for c in d.get("stages", {}).get(LANDMARKS, [])]
    landmarks = [
        sum(1 for d in r["detections"] for c in d.get("stages", {}).get(LANDMARKS, []) if c.get("landmarks"))
        for r in ok
    ]
    last = json.loads(stats_lines[-1]) if stats_lines else {}
    stages = {
        name: {k: v.get(k) for k in ("requests", "failures", "latency_p50_ms", "latency_p95_ms")}
        for name, v in last.get("stages", {}).items()
    }
    server = server_times(first.metrics, last_mark.metrics)
    critical = server.get(DETECTOR, {}).get("inference_ms", 0.0)
    if kind == "cascade" and LANDMARKS in server:
        critical += server[LANDMARKS]["inference_ms"]
    span = max(1, last_mark.lines - first.lines)
    client_cpu = (
        round((last_mark.client_cpu_s - first.client_cpu_s) / span * 1000, 3)
        if first.client_cpu_s is not None
        and last_mark.client_cpu_s is not None
        and last_mark.lines > first.lines
        else None
    )
    return Trial(
        kind=kind, frame=frame, round=0, frames=len(ok), not_ok=len(measured) - len(ok),
        p50_ms=round(percentile(latencies, 50), 3), p95_ms=round(percentile(latencies, 95), 3),
        min_ms=round(min(latencies), 3), max_ms=round(max(latencies), 3),
        faces=_bounds(faces), landmarks=_bounds(landmarks),
        failed_crops=sum(1 for c in crops if c.get("status") == "failed"),
        server=server, stages=stages,
        server_cpu_ms_per_frame=round((last_mark.server_cpu_s - first.server_cpu_s) / span * 1000, 3),
        client_cpu_ms_per_frame=client_cpu,
        measured_s=round(last_mark.at - first.at, 3),
        critical_model_ms=round(critical, 3), wall_s=round(wall, 2),
    )  # fmt: skip


def check_faces(trial: Trial) -> None:
    """The frame must give the faces it holds: else the scenario measures something else."""
    expected = FRAMES[trial.frame]
    if trial.faces[1] != expected:
        raise CascadeError(
            f"{trial.kind} on {trial.frame}: face-detection found {trial.faces[1]} face(s) per frame "
            f"(median; min {trial.faces[0]}, max {trial.faces[2]}), the frame holds {expected}"
        )
    if trial.kind == "cascade" and trial.landmarks[1] != expected:
        raise CascadeError(
            f"cascade on {trial.frame}: face-landmarks answered for {trial.landmarks[1]} crop(s) per frame "
            f"(median), expected {expected}; failed crops: {trial.failed_crops}"
        )


# --- ratios ---------------------------------------------------------------------------------------
def round_values(trials: Sequence[Trial]) -> dict[str, list[float]]:
    """Each ratio once per round, from that round's trials only."""
    by = {(t.round, t.kind, t.frame): t for t in trials}
    values: dict[str, list[float]] = {key: [] for key in RATIO_ORDER}
    for r in sorted({t.round for t in trials}):
        try:
            c1, c4 = by[(r, "cascade", "face1")], by[(r, "cascade", "face4")]
            d1 = by[(r, "detection", "face1")]
        except KeyError:
            continue
        values["cascade_4crops_over_1crop_latency"].append(c4.p50_ms / c1.p50_ms)
        values["cascade_1crop_over_detection_latency"].append(c1.p50_ms / d1.p50_ms)
        for key, trial in (
            ("cascade_overhead_over_model_time", c4),
            ("cascade_overhead_over_model_time_1crop", c1),
            ("detection_overhead_over_model_time", d1),
        ):
            if trial.overhead is not None:
                values[key].append(trial.overhead)
    return values


def summarize(trials: Sequence[Trial]) -> dict[str, Any]:
    """Per configuration: medians over the rounds of the frame latency and the server's times."""
    out: dict[str, Any] = {}
    for kind, frame in CONFIGS:
        mine = [t for t in trials if t.kind == kind and t.frame == frame]
        if not mine:
            continue

        def med(values: Sequence[float]) -> float:
            return round(median(values), 3)

        server = {
            model: {
                key: med([t.server[model][key] for t in mine if model in t.server])
                for key in ("inference_ms", "request_ms", "queue_wait_ms")
            }
            for model in MODELS
            if any(model in t.server for t in mine)
        }
        stages = {
            name: {
                key: med([t.stages[name][key] for t in mine if t.stages.get(name, {}).get(key) is not None])
                for key in ("latency_p50_ms", "latency_p95_ms")
                if any(t.stages.get(name, {}).get(key) is not None for t in mine)
            }
            | {
                "requests": sum(t.stages.get(name, {}).get("requests") or 0 for t in mine),
                "failures": sum(t.stages.get(name, {}).get("failures") or 0 for t in mine),
            }
            for name in mine[0].stages
        }
        out[f"{kind}_{frame}"] = {
            "kind": kind,
            "frame": frame,
            "p50_ms": med([t.p50_ms for t in mine]),
            "p50_range_ms": [min(t.p50_ms for t in mine), max(t.p50_ms for t in mine)],
            "p95_ms": med([t.p95_ms for t in mine]),
            "critical_model_ms": med([t.critical_model_ms for t in mine]),
            "server_cpu_ms_per_frame": med([t.server_cpu_ms_per_frame for t in mine]),
            "client_cpu_ms_per_frame": med(
                [t.client_cpu_ms_per_frame for t in mine if t.client_cpu_ms_per_frame is not None] or [0.0]
            ),
            "faces": mine[0].faces,
            "server": server,
            "stages": stages,
            "trials": [asdict(t) for t in mine],
        }
    return out


@dataclass
class Measured:
    ratios: dict[str, float | None]
    spreads: dict[str, dict[str, float] | None]
    raw: dict[str, Any]
    params: dict[str, Any]
    noise: dict[str, Any] = field(default_factory=dict)


def _log(text: str) -> None:
    print(text, flush=True)


def _trial_line(t: Trial) -> str:
    server = " ".join(f"{m}={v['inference_ms']:.2f}/{v['request_ms']:.2f}ms" for m, v in t.server.items())
    stages = " ".join(f"{n}={v.get('latency_p50_ms')}ms" for n, v in t.stages.items())
    return (
        f"cascade {t.kind:>9} {t.frame} frames={t.frames} p50={t.p50_ms:.2f}ms p95={t.p95_ms:.2f}ms "
        f"faces={t.faces[1]} critical model={t.critical_model_ms:.2f}ms "
        f"(server inference/request {server}) client stage p50 {stages} "
        f"cpu/frame client={_fmt(t.client_cpu_ms_per_frame, 1)}ms server={t.server_cpu_ms_per_frame:.1f}ms "
        f"not_ok={t.not_ok}"
    )


def measure(plan: Plan, plugin_config: Mapping[str, str] | None = None) -> Measured:
    """The scenario's rounds; the double and every scratch file are removed at the end.
    `plugin_config`: the models' OpenVINO properties (default PLUGIN_CONFIG; {} for OpenVINO's own)."""
    from launcher.media import ensure_sample_media

    workdir = Path(tempfile.mkdtemp(prefix="ovms-bench-cascade-"))
    double = LocalDouble(workdir, dict(PLUGIN_CONFIG if plugin_config is None else plugin_config))
    try:
        started = time.monotonic()
        frames = make_frames(ensure_sample_media().photo, workdir / "frames")
        profiles = make_profiles(workdir / "profiles", workdir / "frames")
        double.start()
        page = double.metrics()
        nireq = {m: int(v) for m, v in gauges(page, "ovms_infer_req_queue_size").items()}
        streams = {m: int(v) for m, v in gauges(page, "ovms_streams").items()}
        if not nireq:  # the gauge is optional in OVMS (--metrics_list); the load log line is not
            found = re.findall(r"Loaded model (\S+); .*No of InferRequests: (\d+)", double.logs())
            nireq = {m: int(n) for m, n in found}
        _log(f"cascade: double on {double.address} up in {time.monotonic() - started:.1f}s "
             f"(nireq {nireq}, streams {streams})")  # fmt: skip
        # one unmeasured run: the models' first inferences, the client's imports in the page cache
        warm = run_trial(double, profiles[("cascade", "face4")], "cascade", "face4",
                         Plan(plan.smoke, 1, 3, 1), workdir)  # fmt: skip
        check_faces(warm)
        trials: list[Trial] = []
        for r in range(plan.rounds):
            shift = r % len(CONFIGS)
            for kind, frame in CONFIGS[shift:] + CONFIGS[:shift]:
                trial = run_trial(double, profiles[(kind, frame)], kind, frame, plan, workdir)
                trial.round = r
                check_faces(trial)
                trials.append(trial)
                _log(f"round {r + 1}/{plan.rounds} {_trial_line(trial)}")
        values = round_values(trials)
        ratios = {k: round(median(v), RATIO_DIGITS[k]) if v else None for k, v in values.items()}
        spreads = {k: spread(v, RATIO_DIGITS[k]) for k, v in values.items()}
        raw = {
            "configs": summarize(trials),
            "duration_s": round(time.monotonic() - started, 1),
            "workdir": str(workdir),  # removed at the end, the double's config with it
        }
        params = {
            "models": {m: _shown(model_dir(m)) for m in MODELS},
            "frames": {
                "face1": "the sample photo (512x512, one face of about 93 px)",
                "face4": f"the photo's {FACE_REGION[2]}x{FACE_REGION[2]} region at ({FACE_REGION[0]}, "
                f"{FACE_REGION[1]}) tiled 2x2 (512x512, four faces of the same size)",
                "files": sorted(p.name for p in frames.values()),
            },
            "profiles": {
                "detection": "profiles/face-detection, input the frame's image",
                "cascade": "profiles/face-mesh, its first two stages, face-landmarks max_crops >= 4",
            },
            "rounds": plan.rounds,
            "frames_per_run": plan.frames,
            "warmup_frames": plan.warmup_frames,
            "client": "python -m client --sync --max-frames N (one frame in flight, unpaced), a local "
            "process; later-stage crops go out at once on the client's crop pool",
            "server": {
                "what": "python -m ovms_double, a local process on loopback",
                "config_json": double.config(shown=True),
                "plugin_config": dict(double.plugin_config),
                "flags": " ".join(double.flags),
                "nireq": nireq,
                "streams": streams,
            },
            "model_time": MODEL_TIME,
        }
        return Measured(ratios, spreads, raw, params)
    finally:
        double.stop()
        shutil.rmtree(workdir, ignore_errors=True)


# --- report ---------------------------------------------------------------------------------------
def _fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return "-"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def _faces(frame: str) -> str:
    count = FRAMES[frame]
    return f"{count} face{'s' if count > 1 else ''}"


def _chart(configs: Mapping[str, Any], target: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [f"{k}_{f}" for k, f in CONFIGS if f"{k}_{f}" in configs]
    labels = [f"{configs[n]['kind']}\n{_faces(configs[n]['frame'])}" for n in names]
    latency = [configs[n]["p50_ms"] for n in names]
    low = [max(0.0, configs[n]["p50_ms"] - configs[n]["p50_range_ms"][0]) for n in names]
    high = [max(0.0, configs[n]["p50_range_ms"][1] - configs[n]["p50_ms"]) for n in names]
    model = [configs[n]["critical_model_ms"] for n in names]
    client = [configs[n].get("client_cpu_ms_per_frame") or 0.0 for n in names]
    server = [configs[n]["server_cpu_ms_per_frame"] for n in names]
    xs = np.arange(len(names))
    fig, (ax, ax_cpu) = plt.subplots(1, 2, figsize=(11, 4.2))
    bars = ax.bar(xs - 0.2, latency, 0.4, yerr=[low, high], capsize=3, label="frame latency p50",
                  color="#3182bd")  # fmt: skip
    ax.bar_label(bars, fmt="%.1f", padding=2, fontsize=8)
    bars = ax.bar(xs + 0.2, model, 0.4, label="server inference on the critical path", color="#31a354")
    ax.bar_label(bars, fmt="%.1f", padding=2, fontsize=8)
    ax.set_title("Frame latency vs model time (median of rounds, min-max)", fontsize=10)
    ax_cpu.bar(xs, client, 0.5, label="client", color="#9ecae1")
    bars = ax_cpu.bar(xs, server, 0.5, bottom=client, label="server (the double)", color="#e6550d")
    totals = [f"{c + v:.1f}" for c, v in zip(client, server, strict=True)]
    ax_cpu.bar_label(bars, labels=totals, padding=2, fontsize=8)
    ax_cpu.set_title("CPU per frame, client + server (2 cores shared)", fontsize=10)
    for axis in (ax, ax_cpu):
        axis.set_xticks(xs, labels, fontsize=8)
        axis.set_ylabel("ms")
        axis.legend(fontsize=8)
        axis.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(target, dpi=110)
    plt.close(fig)


def render(result: Mapping[str, Any], figdir: Path) -> str:
    """The scenario's markdown section (and its chart in figdir) from a result holding its raw figures
    under raw.cascade (bench.inference) or raw (a standalone run)."""
    raw = result.get("raw", {})
    params = result.get("params", {})
    section = raw.get("cascade", raw) if "cascade" in raw else raw
    cparams = params.get("cascade", params) if "cascade" in params else params
    configs = section.get("configs", {})
    if not configs:
        return ""
    figdir.mkdir(parents=True, exist_ok=True)
    _chart(configs, figdir / "inference-cascade.png")
    server = cparams.get("server", {})
    frames = cparams.get("frames", {})
    lines = [
        "### Cascade: face-detection → face-landmarks",
        "",
        f"{cparams.get('rounds', '?')} round(s) of the four configurations (rotated order), each a client "
        f"run of {cparams.get('frames_per_run', '?')} frames after {cparams.get('warmup_frames', '?')} "
        f"left out; {cparams.get('client', '')}. Server: {server.get('what', '?')}, plugin config "
        f"`{server.get('plugin_config')}`, nireq {server.get('nireq')}, streams {server.get('streams')}.",
        "",
        f"- 1 face: {frames.get('face1', '?')}; 4 faces: {frames.get('face4', '?')}.",
        f"- Model time: {MODEL_TIME}.",
        "",
        "| configuration | frame p50 ms (rounds min..max) | p95 ms | server inference ms/request "
        "(request ms) | critical-path model ms | client stage p50 ms (stats.jsonl) | CPU ms/frame client + "
        "server |",
        "|---|---|---|---|---|---|---|",
    ]
    for kind, frame in CONFIGS:
        cell = configs.get(f"{kind}_{frame}")
        if not cell:
            continue
        srv = "; ".join(
            f"{m} {_fmt(v.get('inference_ms'))} ({_fmt(v.get('request_ms'))})"
            for m, v in cell["server"].items()
        )
        stages = "; ".join(f"{n} {_fmt(v.get('latency_p50_ms'))}" for n, v in cell.get("stages", {}).items())
        low, high = cell["p50_range_ms"]
        lines.append(
            f"| {kind}, {_faces(frame)} | {_fmt(cell['p50_ms'])} ({_fmt(low)}..{_fmt(high)}) | "
            f"{_fmt(cell['p95_ms'])} | {srv} | {_fmt(cell['critical_model_ms'])} | {stages} | "
            f"{_fmt(cell.get('client_cpu_ms_per_frame'), 1)} + {_fmt(cell['server_cpu_ms_per_frame'], 1)} |"
        )
    ratios, spreads = result.get("ratios", {}), result.get("spreads") or {}
    targets = {t.key: t for t in all_targets()}
    lines += ["", "| ratio | value | spread (min..max) | target | met | what |", "|---|---|---|---|---|---|"]
    for key in RATIO_ORDER:
        if key not in ratios:
            continue
        value, bounds, target = ratios[key], spreads.get(key), targets.get(key)
        shown = f"{bounds['min']}..{bounds['max']}" if bounds else "-"
        if (relative_spread(bounds) or 0.0) > NOISY_SPREAD:
            shown += " **noisy**"
        if target is None:
            lines.append(f"| `{key}` | {_fmt(value, 3)} | {shown} | - | - | {EXPLAINED.get(key, '')} |")
            continue
        met = target.met(value if isinstance(value, (int, float)) else None)
        mark = "n/a" if met is None else ("yes" if met else "**no**")
        lines.append(
            f"| `{key}` | {_fmt(value, 3)} | {shown} | {target.op} {target.limit:g} | {mark} | "
            f"{target.what} |"
        )
    lines += ["", "![Cascade latency and model time](benchmarks/inference-cascade.png)", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.inference_cascade", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--smoke", action="store_true", help="short run")
    parser.add_argument(
        "--plugin-config",
        type=json.loads,
        default=None,
        help=f"the models' OpenVINO properties as JSON (default {json.dumps(PLUGIN_CONFIG)}; "
        "{}: OpenVINO's own defaults)",
    )
    args = parser.parse_args(argv)
    plan = SMOKE if args.smoke else FULL
    stop_on_sigterm()
    try:
        before = calibrate()
        measured = measure(plan, args.plugin_config)
        noise = machine_noise(before, calibrate())
    except CascadeError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 1
    except KeyboardInterrupt:
        print("interrupted; the double stopped", file=sys.stderr, flush=True)
        return 130
    # alone, always into the scratch folder: the committed figures come from `bash bench/run.sh inference`
    path = write_result(NAME, smoke=True, ratios=measured.ratios, raw=measured.raw, params=measured.params,
                        spreads=measured.spreads, noise=noise)  # fmt: skip
    doc = json.loads(path.read_text())
    path.write_text(json.dumps({**doc, "smoke": args.smoke}, indent=2) + "\n")
    figdir = output_dir(True)
    render(json.loads(path.read_text()), figdir)
    print(f"result: {path}; chart: {figdir / 'inference-cascade.png'}", flush=True)
    print_ratios("cascade latency", measured.ratios, all_targets(), measured.spreads)
    return 0


if __name__ == "__main__":
    sys.exit(main())
