"""Inference path and stream density: in-process OpenVINO vs our client over gRPC vs through the mTLS proxy.

`python -m bench.inference [--smoke]` (the documented command is `bash bench/run.sh inference`).

Same model (the prepared person detector), same frames (the sample video, looping), same machine,
same client code (KServe v2 over gRPC). Three paths, each in synchronous mode (one request in flight,
like the reference client) and pipelined mode (CLIENT_MAX_IN_FLIGHT = nireq + 1):

  (a) inprocess  `bench.inference_inprocess`: the client's own sources, preprocessing, pipelining
                 and decoders with OpenVINO compiled in the same process (in the client image, with
                 OpenVINO mounted into it);
  (b) grpc       our client container -> the OVMS double container, plain gRPC on a private network;
  (c) mtls       our client container -> tls-proxy container (mTLS, throw-away PKI) -> the double.

and (b) and (c) once more with every frame sent as one JPEG (`encoding: jpeg`, what a remote camera
host behind a store's uplink sends): synchronous both, pipelined through the proxy.

The double and (a) compile the model with the same OpenVINO properties (PERFORMANCE_HINT THROUGHPUT)
and the same number of infer requests. Every round runs the nine configurations back to back, in a
rotated order, so each ratio compares runs made under the same conditions; the reported ratio is the
median of the per-round ratios. Bytes on the wire per frame are the client container's eth0 counters
over the measured window. Then stream density, the reference method: streams at 15 FPS each are added
while every stream keeps 15 FPS (within 2 %), for (a) and (c), and for (c) raw and JPEG through a
50 Mbit/s link (Linux tc's token bucket on the client's interface); the searches take their steps
alternately. Last, the cascade scenario (`bench.inference_cascade`): face-detection -> face-landmarks
on a frame with 1 and with 4 faces against face-detection alone, the client and the double as local
processes; its ratios join this benchmark's.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from bench import inference_cascade
from bench.common import (
    calibrate,
    load_result,
    machine_noise,
    median,
    output_dir,
    percentile,
    print_ratios,
    spread,
    stop_on_sigterm,
    write_result,
)
from bench.inference_clients import (
    ClientRun,
    client_settings,
    cpu_delta,
    openvino_version,
    start_container_client,
    start_inprocess_client,
)
from bench.inference_report import render
from bench.inference_setup import GRPC_PORT, TLS_PORT, BenchError, Stack, find_inputs, image_nginx_tuning

__all__ = ["main", "render"]

NAME = "inference"
PATHS = ("inprocess", "grpc", "mtls", "grpc_jpeg", "mtls_jpeg")
MODES = ("sync", "pipelined")
# every round: the six raw configurations, and JPEG where a ratio compares it with raw
CONFIGS: tuple[tuple[str, str], ...] = (
    *((path, mode) for mode in MODES for path in ("inprocess", "grpc", "mtls")),
    ("grpc_jpeg", "sync"),
    ("mtls_jpeg", "sync"),
    ("mtls_jpeg", "pipelined"),
)
# a store's uplink between the camera host and a remote server
LINK_RATE = "50mbit"
LINK_MBIT = 50.0
# density search -> (path, link rate or None)
DENSITY_SEARCHES: dict[str, tuple[str, str | None]] = {
    "inprocess": ("inprocess", None),
    "mtls": ("mtls", None),
    "link50_raw": ("mtls", LINK_RATE),
    "link50_jpeg": ("mtls_jpeg", LINK_RATE),
}
PLUGIN_CONFIG = {"PERFORMANCE_HINT": "THROUGHPUT"}
STREAM_FPS = 15.0
FPS_TOLERANCE = 0.98  # a stream "keeps 15 FPS" at >= 14.7 measured (pacing jitter over a short window)
STARTUP_ALLOWANCE_S = 90.0
FIRST_RESULT_TIMEOUT_S = 90.0

# the ratios of this benchmark, in the order they are printed and stored
RATIO_ORDER = (
    "mtls_pipelined_over_inprocess",
    "pipelined_over_sync",
    "proxy_added_p50_ms",
    "wire_raw_over_jpeg",
    "proxy_added_jpeg_over_raw",
    "density_mtls_over_inprocess",
    "density_inprocess",
    "density_mtls",
    "link50_density_jpeg_over_raw",
    "link50_density_raw",
    "link50_density_jpeg",
    # the cascade scenario (bench/inference_cascade.py)
    *inference_cascade.RATIO_ORDER,
)


@dataclass(frozen=True)
class Plan:
    smoke: bool
    rounds: int
    warmup_s: float
    measure_s: float
    density_warmup_s: float
    density_measure_s: float
    density_cap: int
    density_agree: bool


FULL = Plan(False, 3, 3.0, 12.0, 2.0, 6.0, 32, True)
SMOKE = Plan(True, 1, 1.0, 3.0, 1.0, 3.0, 2, False)


@dataclass
class Trial:
    path: str
    mode: str
    streams: int
    target_fps: float
    window_s: float
    frames: int
    not_ok: int
    fps: float
    stream_fps: list[float]
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    cpu_s: float | None
    cpu_ms_per_frame: float | None
    cpu_split_ms_per_frame: dict[str, float]
    machine_cpu_s: float
    round: int = 0
    error: str | None = None
    # bytes the client sent / received per frame delivered (None in-process: no network)
    tx_bytes_per_frame: float | None = None
    rx_bytes_per_frame: float | None = None
    link: str | None = None

    @classmethod
    def failed(cls, path: str, mode: str, streams: int, target_fps: float, error: str) -> Trial:
        """A step whose client never delivered: no frame, so it keeps no rate."""
        return cls(path, mode, streams, target_fps, 1.0, 0, 0, 0.0, [], None, None, None, None, None, {}, 0.0,
                   error=error)  # fmt: skip

    def keeps(self, fps: float) -> bool:
        """Every stream delivered `fps` (within FPS_TOLERANCE, plus one frame of counting granularity)
        and no frame failed."""
        floor = fps * FPS_TOLERANCE - 1.0 / self.window_s
        return self.not_ok == 0 and bool(self.stream_fps) and min(self.stream_fps) >= floor


@dataclass
class Density:
    """The stream-density search of one configuration: up from `start` while a step keeps 15 FPS,
    down while it does not. With `agree`, a step runs until two of its runs agree (three at most) and
    the majority decides; without it (smoke runs), one run decides."""

    path: str
    start: int
    cap: int
    agree: bool
    best: int = 0
    current: int = 0
    done: bool = False
    failed: set[int] = field(default_factory=set)
    runs: dict[int, list[bool]] = field(default_factory=dict)
    steps: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.current = max(1, min(self.start, self.cap))

    def record(self, streams: int, passed: bool, trial: Trial) -> None:
        self.steps.append(
            {
                "streams": streams,
                "passed": passed,
                "min_fps": round(min(trial.stream_fps), 2) if trial.stream_fps else 0.0,
                "mean_fps": round(sum(trial.stream_fps) / len(trial.stream_fps), 2)
                if trial.stream_fps
                else 0.0,
                "total_fps": round(trial.fps, 1),
                "p95_ms": trial.p95_ms,
                "cpu_ms_per_frame": trial.cpu_ms_per_frame,
            }
            | ({"error": trial.error} if trial.error else {})
        )
        outcomes = self.runs.setdefault(streams, [])
        outcomes.append(passed)
        if self.agree and (len(outcomes) < 2 or (len(outcomes) == 2 and outcomes[0] != outcomes[1])):
            return  # the same step again: two runs must agree
        if sum(outcomes) * 2 > len(outcomes):
            self.best = max(self.best, streams)
            if streams + 1 > self.cap or streams + 1 in self.failed:
                self.done = True
            else:
                self.current = streams + 1
            return
        self.failed.add(streams)
        if streams - 1 <= self.best or streams == 1:
            self.done = True
        else:
            self.current = streams - 1

    def bounds(self) -> dict[str, int]:
        """{min, median, max} of the density: the result, one less when its step passed only by a
        majority, one more when the next step failed only by a majority."""
        at_best = self.runs.get(self.best, [])
        above = self.runs.get(self.best + 1, [])
        low = self.best - 1 if at_best and not all(at_best) else self.best
        high = self.best + 1 if above and any(above) else self.best
        return {"min": max(0, low), "median": self.best, "max": high}


# --- one trial ------------------------------------------------------------------------------------
def route(path: str) -> tuple[str, str]:
    """(route, encoding) of a path: "mtls_jpeg" is the mTLS route with JPEG frames."""
    base, _, encoding = path.partition("_")
    return base, encoding or "raw"


def _start(stack: Stack, path: str, settings: Mapping[str, str], duration_s: float, nireq: int) -> ClientRun:
    base, _ = route(path)
    if base == "inprocess":
        return start_inprocess_client(stack, settings, duration_s, nireq)
    if base == "grpc":
        return start_container_client(stack, f"{stack.double}:{GRPC_PORT}", False, settings, duration_s)
    return start_container_client(stack, f"{stack.proxy}:{TLS_PORT}", True, settings, duration_s)


def run_trial(
    stack: Stack,
    path: str,
    mode: str,
    *,
    streams: int,
    target_fps: float,
    warmup_s: float,
    measure_s: float,
    nireq: int,
    max_in_flight: int,
    link: str | None = None,
) -> Trial:
    base, encoding = route(path)
    settings = client_settings(streams, target_fps, mode, max_in_flight, encoding)
    run = _start(stack, path, settings, warmup_s + measure_s + STARTUP_ALLOWANCE_S, nireq)
    networked = base != "inprocess"
    try:
        if link is not None:
            run.shape(link)
        run.wait_first_result(FIRST_RESULT_TIMEOUT_S)
        involved = [run.container]
        involved += [stack.double] if networked else []
        involved += [stack.proxy] if base == "mtls" else []
        for name in involved:
            run.meter.add_container(name)
        time.sleep(warmup_s)
        t0, cpu0, net0 = time.time(), run.meter.read(), run.net_bytes() if networked else None
        time.sleep(measure_s)
        t1, cpu1, net1 = time.time(), run.meter.read(), run.net_bytes() if networked else None
        code = run.stop()
        if code != 0:
            raise BenchError(f"the client ({path}, {mode}) exited with {code}:\n{run.logs()[-3000:]}")
        records = run.records()
    finally:
        run.remove()
        stack.forget(run.container)
    window = [r for r in records if t0 <= r["ts"] < t1]
    ok = [r for r in window if r.get("status") == "ok"]
    span = t1 - t0
    latencies = [float(r["latency_ms"]) for r in ok]
    per_stream = [sum(1 for r in ok if r["stream"] == s) / span for s in range(streams)]
    keys = [k for k in cpu0 if k != "machine"]
    cpu_s = cpu_delta(cpu0, cpu1, keys) if keys and not run.meter.missing else None
    roles = {stack.double: "server", stack.proxy: "proxy"}
    split = {
        roles.get(key, "client"): round((cpu1[key] - cpu0[key]) / len(ok) * 1000, 3) if ok else 0.0
        for key in keys
    }
    rx_per_frame = tx_per_frame = None
    if net0 is not None and net1 is not None and ok:
        rx_per_frame = round((net1[0] - net0[0]) / len(ok), 1)
        tx_per_frame = round((net1[1] - net0[1]) / len(ok), 1)
    return Trial(
        path=path,
        mode=mode,
        streams=streams,
        target_fps=target_fps,
        window_s=round(span, 3),
        frames=len(ok),
        not_ok=len(window) - len(ok),
        fps=len(ok) / span,
        stream_fps=[round(v, 2) for v in per_stream],
        p50_ms=percentile(latencies, 50) if latencies else None,
        p95_ms=percentile(latencies, 95) if latencies else None,
        p99_ms=percentile(latencies, 99) if latencies else None,
        cpu_s=round(cpu_s, 3) if cpu_s is not None else None,
        cpu_ms_per_frame=round(cpu_s / len(ok) * 1000, 3) if cpu_s is not None and ok else None,
        cpu_split_ms_per_frame=split,
        machine_cpu_s=round(cpu1["machine"] - cpu0["machine"], 3),
        tx_bytes_per_frame=tx_per_frame,
        rx_bytes_per_frame=rx_per_frame,
        link=link,
    )


# --- the whole run --------------------------------------------------------------------------------
def _nireq_of(stack: Stack) -> int:
    match = re.search(r"No of InferRequests: (\d+)", stack.logs(stack.double))
    if not match:
        raise BenchError(
            f"the double's log does not give its number of infer requests:\n{stack.logs(stack.double)}"
        )
    return int(match.group(1))


def _log(text: str) -> None:
    print(text, flush=True)


def _trial_line(trial: Trial) -> str:
    p50 = "-" if trial.p50_ms is None else f"{trial.p50_ms:.1f}"
    p99 = "-" if trial.p99_ms is None else f"{trial.p99_ms:.1f}"
    cpu = "-" if trial.cpu_ms_per_frame is None else f"{trial.cpu_ms_per_frame:.1f}"
    split = " ".join(f"{k}={v:.1f}" for k, v in trial.cpu_split_ms_per_frame.items())
    slowest = "-" if not trial.stream_fps else f"{min(trial.stream_fps):5.1f}"
    wire = "-" if trial.tx_bytes_per_frame is None else f"{trial.tx_bytes_per_frame / 1000:.1f}kB"
    link = f" link={trial.link}" if trial.link else ""
    return (
        f"{trial.path:>9} {trial.mode:>9} streams={trial.streams:<2} fps={trial.fps:6.1f} "
        f"min_stream_fps={slowest} p50={p50}ms p99={p99}ms cpu/frame={cpu}ms ({split}) "
        f"sent/frame={wire}{link} not_ok={trial.not_ok} "
        f"machine_cpu={trial.machine_cpu_s / trial.window_s:.2f} cores"
    )


def summarize(trials: Sequence[Trial]) -> dict[str, Any]:
    """Per path and mode: medians over the rounds, and the per-round figures."""
    out: dict[str, Any] = {}
    for path in PATHS:
        out[path] = {}
        for mode in MODES:
            mine = [t for t in trials if t.path == path and t.mode == mode]
            if not mine:
                continue

            def med(attr: str, mine: list[Trial] = mine) -> float | None:
                values = [getattr(t, attr) for t in mine if getattr(t, attr) is not None]
                return round(median(values), 3) if values else None

            out[path][mode] = {
                "fps": med("fps"),
                "p50_ms": med("p50_ms"),
                "p95_ms": med("p95_ms"),
                "p99_ms": med("p99_ms"),
                "cpu_ms_per_frame": med("cpu_ms_per_frame"),
                "tx_bytes_per_frame": med("tx_bytes_per_frame"),
                "rx_bytes_per_frame": med("rx_bytes_per_frame"),
                "cpu_split_ms_per_frame": {
                    role: round(median([t.cpu_split_ms_per_frame[role] for t in mine]), 3)
                    for role in mine[0].cpu_split_ms_per_frame
                },
                "trials": [asdict(t) for t in mine],
            }
    return out


# ratio -> digits it is reported with
RATIO_DIGITS = {
    "mtls_pipelined_over_inprocess": 3,
    "pipelined_over_sync": 3,
    "proxy_added_p50_ms": 2,
    "wire_raw_over_jpeg": 2,
    "proxy_added_jpeg_over_raw": 3,
}


def ratios_of(trials: Sequence[Trial], rounds: int) -> dict[str, float | None]:
    """Per-round ratios (like with like), then their median."""
    return {
        key: round(median(values), RATIO_DIGITS[key]) if values else None
        for key, values in round_values(trials, rounds).items()
    }


def spreads_of(trials: Sequence[Trial], rounds: int) -> dict[str, dict[str, float] | None]:
    """{min, median, max} of each ratio's per-round values."""
    return {key: spread(values, RATIO_DIGITS[key]) for key, values in round_values(trials, rounds).items()}


def round_values(trials: Sequence[Trial], rounds: int) -> dict[str, list[float]]:
    """Each ratio once per round, from that round's trials only."""
    by = {(t.round, t.path, t.mode): t for t in trials}
    over_inprocess, pipelined_over_sync, added = [], [], []
    wire, added_jpeg_over_raw = [], []
    for r in range(rounds):
        try:
            mtls_pipe, mtls_sync = by[(r, "mtls", "pipelined")], by[(r, "mtls", "sync")]
            grpc_sync = by[(r, "grpc", "sync")]
            inproc = max(by[(r, "inprocess", "pipelined")].fps, by[(r, "inprocess", "sync")].fps)
        except KeyError:
            continue
        if inproc > 0:
            over_inprocess.append(mtls_pipe.fps / inproc)
        if mtls_sync.fps > 0:
            pipelined_over_sync.append(mtls_pipe.fps / mtls_sync.fps)
        raw_added = None
        if mtls_sync.p50_ms is not None and grpc_sync.p50_ms is not None:
            raw_added = mtls_sync.p50_ms - grpc_sync.p50_ms
            added.append(raw_added)
        jpeg_pipe = by.get((r, "mtls_jpeg", "pipelined"))
        if jpeg_pipe and jpeg_pipe.tx_bytes_per_frame and mtls_pipe.tx_bytes_per_frame:
            wire.append(mtls_pipe.tx_bytes_per_frame / jpeg_pipe.tx_bytes_per_frame)
        # the proxy's latency for a JPEG frame over its latency for a raw one (both sync, same round);
        # a raw difference within noise of zero gives no ratio
        jpeg_mtls, jpeg_grpc = by.get((r, "mtls_jpeg", "sync")), by.get((r, "grpc_jpeg", "sync"))
        jpeg_p50 = [t.p50_ms for t in (jpeg_mtls, jpeg_grpc) if t is not None and t.p50_ms is not None]
        if len(jpeg_p50) == 2 and raw_added is not None and raw_added > 0.05:
            added_jpeg_over_raw.append((jpeg_p50[0] - jpeg_p50[1]) / raw_added)
    return {
        "mtls_pipelined_over_inprocess": over_inprocess,
        "pipelined_over_sync": pipelined_over_sync,
        "proxy_added_p50_ms": added,
        "wire_raw_over_jpeg": wire,
        "proxy_added_jpeg_over_raw": added_jpeg_over_raw,
    }


def start_estimate(path: str, link: str | None, throughput: float, bytes_per_frame: float | None) -> int:
    """Where a density search starts: a little below what the one-stream throughput (CPU) allows, and
    below what the link carries at 15 FPS per stream."""
    estimate = int(throughput / STREAM_FPS) - 1
    if link is not None and bytes_per_frame:
        estimate = min(estimate, int(LINK_MBIT * 1e6 / (bytes_per_frame * 8 * STREAM_FPS)) - 1)
    return max(1, estimate)


def run_density(
    stack: Stack,
    plan: Plan,
    paths: Mapping[str, Any],
    nireq: int,
    max_in_flight: int,
) -> dict[str, Density]:
    searches: dict[str, Density] = {}
    for name, (path, link) in DENSITY_SEARCHES.items():
        cell = paths.get(path, {}).get("pipelined", {})
        estimate = (
            1
            if plan.smoke
            else start_estimate(path, link, cell.get("fps") or STREAM_FPS, cell.get("tx_bytes_per_frame"))
        )
        searches[name] = Density(path, start=estimate, cap=plan.density_cap, agree=plan.density_agree)
    while not all(s.done for s in searches.values()):
        for name, search in searches.items():
            if search.done:
                continue
            path, link = DENSITY_SEARCHES[name]
            streams = search.current
            try:
                trial = run_trial(
                    stack,
                    path,
                    "pipelined",
                    streams=streams,
                    target_fps=STREAM_FPS,
                    warmup_s=plan.density_warmup_s,
                    measure_s=plan.density_measure_s,
                    nireq=nireq,
                    max_in_flight=max_in_flight,
                    link=link,
                )
            except BenchError as exc:
                # a step whose client never delivers (overloaded machine) does not keep 15 FPS; the
                # search goes on rather than losing the whole run
                _log(f"density {name} streams={streams}: step failed, counted as missing 15 FPS: {exc}")
                trial = Trial.failed(path, "pipelined", streams, STREAM_FPS, str(exc).splitlines()[0])
            passed = trial.keeps(STREAM_FPS)
            search.record(streams, passed, trial)
            _log(f"density {name:<11} {_trial_line(trial)} -> {'keeps' if passed else 'misses'} 15 FPS")
    return searches


def density_ratio(numerator: Density, denominator: Density) -> tuple[float | None, dict[str, float] | None]:
    """One density over another, and its spread from both searches' bounds."""
    if not denominator.best:
        return None, None
    value = round(numerator.best / denominator.best, 3)
    top, bottom = numerator.bounds(), denominator.bounds()
    if not bottom["min"]:
        return value, None
    return value, {
        "min": round(top["min"] / bottom["max"], 3),
        "median": value,
        "max": round(top["max"] / bottom["min"], 3),
    }


@dataclass
class Measured:
    ratios: dict[str, Any]
    spreads: dict[str, dict[str, float] | None]
    raw: dict[str, Any]
    params: dict[str, Any]
    noise: dict[str, Any]


def measure(plan: Plan) -> Measured:
    inputs = find_inputs()
    stack = Stack(inputs, PLUGIN_CONFIG)
    try:
        started = time.monotonic()
        calibration_before = calibrate()
        stack.start()
        nireq = _nireq_of(stack)
        max_in_flight = nireq + 1
        _log(
            f"stack up in {time.monotonic() - started:.1f}s: double {stack.double} (nireq {nireq}), "
            f"proxy {stack.proxy}, network {stack.network}"
        )
        configs = list(CONFIGS)
        trials: list[Trial] = []
        for r in range(plan.rounds):
            shift = (2 * r) % len(configs)
            for path, mode in configs[shift:] + configs[:shift]:
                trial = run_trial(
                    stack,
                    path,
                    mode,
                    streams=1,
                    target_fps=0,
                    warmup_s=plan.warmup_s,
                    measure_s=plan.measure_s,
                    nireq=nireq,
                    max_in_flight=1 if mode == "sync" else max_in_flight,
                )
                trial.round = r
                trials.append(trial)
                _log(f"round {r + 1}/{plan.rounds} {_trial_line(trial)}")
        paths = summarize(trials)
        ratios: dict[str, Any] = dict(ratios_of(trials, plan.rounds))
        spreads = spreads_of(trials, plan.rounds)
        searches = run_density(stack, plan, paths, nireq, max_in_flight)
        cascade = inference_cascade.measure(inference_cascade.SMOKE if plan.smoke else inference_cascade.FULL)
        calibration_after = calibrate()
        for key, (numerator, denominator) in {
            "density_mtls_over_inprocess": ("mtls", "inprocess"),
            "link50_density_jpeg_over_raw": ("link50_jpeg", "link50_raw"),
        }.items():
            ratios[key], spreads[key] = density_ratio(searches[numerator], searches[denominator])
        for key, name in {
            "density_inprocess": "inprocess",
            "density_mtls": "mtls",
            "link50_density_raw": "link50_raw",
            "link50_density_jpeg": "link50_jpeg",
        }.items():
            ratios[key] = searches[name].best
            spreads[key] = dict(searches[name].bounds())
        ratios |= cascade.ratios
        spreads |= cascade.spreads
        ratios = {key: ratios[key] for key in RATIO_ORDER}
        raw = {
            "paths": paths,
            "density": {
                name: {
                    "path": s.path,
                    "link": DENSITY_SEARCHES[name][1],
                    "max_streams": s.best,
                    "bounds": s.bounds(),
                    "start": s.start,
                    "cap": s.cap,
                    "steps": s.steps,
                }
                for name, s in searches.items()
            },
            "cascade": cascade.raw,
            "duration_s": round(time.monotonic() - started, 1),
            "docker": {"network": stack.network, "containers": list(stack.created)},
        }
        params = {
            "model": f"{inputs.model_dir.parent.name} v{inputs.model_dir.name} (IR, 1x300x300x3 uint8)",
            "frames": "sample.mp4 (640x480, 90 frames, looping), decoded by each client stream",
            "rounds": plan.rounds,
            "warmup_s": plan.warmup_s,
            "measure_s": plan.measure_s,
            "link": {
                "rate": LINK_RATE,
                "how": f"tc qdisc add dev eth0 root tbf rate {LINK_RATE} burst 32kbit latency 400ms, in the "
                "client container's network namespace (what the client sends: the cameras' uplink)",
            },
            "jpeg_quality": 90,
            "density": {
                "stream_fps": STREAM_FPS,
                "pass": f"every stream >= {STREAM_FPS * FPS_TOLERANCE:.2f} FPS (less one frame per "
                "measured window, the counting granularity) and no failed frame",
                "warmup_s": plan.density_warmup_s,
                "measure_s": plan.density_measure_s,
                "cap": plan.density_cap,
                "step_runs": "until two runs agree, three at most (majority)"
                if plan.density_agree
                else "one",
            },
            "server": {
                "config_json": stack.server_config(),
                "flags": f"--port {GRPC_PORT} --rest_port 8000 --file_system_poll_wait_seconds 0 "
                "--metrics_enable",
                "nireq_effective": nireq,
            },
            "inprocess": {"plugin_config": PLUGIN_CONFIG, "nireq": nireq},
            "client": {
                "sync": client_settings(1, 0, "sync", 1),
                "pipelined": client_settings(1, 0, "pipelined", max_in_flight),
                "jpeg": client_settings(1, 0, "pipelined", max_in_flight, "jpeg"),
                "where": "every configuration runs in the ovms-launcher/client:dev container on the "
                "private network; (a) with this interpreter's openvino package mounted read-only "
                f"(OpenVINO {openvino_version()})",
            },
            "proxy": {
                "site_template": "roles/ovms_tls_proxy/templates/ovms-proxy.conf.j2",
                "role_defaults": stack.proxy_tuning,
                "image_nginx_conf": image_nginx_tuning(),
            },
            "cascade": cascade.params,
        }
        noise = machine_noise(calibration_before, calibration_after)
        return Measured(ratios, spreads, raw, params, noise)
    finally:
        stack.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.inference", description=__doc__.split("\n")[0])
    parser.add_argument("--smoke", action="store_true", help="short run, results to a scratch folder")
    args = parser.parse_args(argv)
    plan = SMOKE if args.smoke else FULL
    stop_on_sigterm()
    try:
        measured = measure(plan)
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 1
    except KeyboardInterrupt:
        print("interrupted; containers removed", file=sys.stderr, flush=True)
        return 130
    path = write_result(
        NAME,
        smoke=args.smoke,
        ratios=measured.ratios,
        raw=measured.raw,
        params=measured.params,
        spreads=measured.spreads,
        noise=measured.noise,
    )
    if args.smoke:  # a full run's charts come from bench.report, with the rest of docs/benchmarks.md
        figdir = output_dir(True)
        render(load_result(NAME, path.parent) or {}, figdir)
        print(f"result: {path}; charts: {figdir}", flush=True)
    # as bench.common.conclude, with the cascade scenario's targets where bench/common.py lacks them
    if not args.smoke:
        from bench.report import regenerate

        print(f"[{NAME}] wrote {regenerate()}", flush=True)
    title = "inference path and stream density"
    print_ratios(title, measured.ratios, inference_cascade.all_targets(), measured.spreads)
    return 0


if __name__ == "__main__":
    sys.exit(main())
