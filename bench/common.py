"""What every benchmark shares: trials and medians, spreads, the machine's own noise, the machine
description, result files, the ratio table.

Every figure a benchmark reports as a target is a ratio of two things measured in the same run (these
machines are noisy); raw figures are kept next to the ratios. A ratio is only worth its spread: each
comes with the {min, median, max} of its per-round (per-trial) values, and a result whose spread passes
NOISY_SPREAD is marked noisy. The machine's own noise is measured in the same run: a fixed CPU-bound
calibration loop before and after the benchmark. A full run writes `bench/results/<name>.json`
(committed); a smoke run (`--smoke`) writes to a temporary folder so the committed results only ever
come from full runs.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from testbed.paths import PROJECT_ROOT

RESULTS_DIR = PROJECT_ROOT / "bench" / "results"
SMOKE_DIR_ENV = "OVMS_BENCH_SMOKE_DIR"


@dataclass(frozen=True)
class Target:
    """A ratio's goal: `value <op> limit`, op one of '>=' or '<='."""

    key: str
    op: str
    limit: float
    what: str

    def met(self, value: float | None) -> bool | None:
        if value is None:
            return None
        return value >= self.limit if self.op == ">=" else value <= self.limit


def median(values: Sequence[float]) -> float:
    if not values:
        raise ValueError("median of no values")
    return float(statistics.median(values))


# a ratio whose per-round values spread more than this around their median is marked noisy
NOISY_SPREAD = 0.15


def spread(values: Sequence[float], digits: int = 3) -> dict[str, float] | None:
    """{min, median, max} of per-round values; None when there are none."""
    kept = [float(v) for v in values if v is not None]
    if not kept:
        return None
    return {
        "min": round(min(kept), digits),
        "median": round(median(kept), digits),
        "max": round(max(kept), digits),
    }


def relative_spread(bounds: Mapping[str, float] | None) -> float | None:
    """(max - min) / |median|: how far the values of one ratio scatter."""
    if not bounds or not bounds["median"]:
        return None
    return (bounds["max"] - bounds["min"]) / abs(bounds["median"])


def noisy_keys(spreads: Mapping[str, Mapping[str, float] | None]) -> list[str]:
    """The ratios whose spread passes NOISY_SPREAD."""
    return [key for key, bounds in spreads.items() if (relative_spread(bounds) or 0.0) > NOISY_SPREAD]


def _calibration_loop() -> int:
    """A fixed amount of single-core interpreter work (about 50 ms on the 2-core machine)."""
    total = 0
    for i in range(400_000):
        total += (i * i) % 7
    return total


def calibrate(repeats: int = 7) -> list[float]:
    """Milliseconds of the calibration loop, `repeats` times: the machine's speed right now."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        _calibration_loop()
        times.append((time.perf_counter() - started) * 1000.0)
    return times


def machine_noise(before: Sequence[float], after: Sequence[float]) -> dict[str, Any]:
    """The calibration loop before and after a benchmark: each side's spread, the drift between them,
    and the spread of all of it (how much the machine alone moves a figure in this run)."""
    both = [*before, *after]
    return {
        "loop": "400 000 iterations of integer arithmetic in Python, one core",
        "before_ms": spread(before, 2),
        "after_ms": spread(after, 2),
        "drift": round(median(after) / median(before), 3) if before and after else None,
        "spread": round(relative_spread(spread(both, 4)) or 0.0, 3),
    }


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of `values`."""
    if not values:
        raise ValueError("percentile of no values")
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1))))
    return float(ordered[rank])


def _first_line(cmd: Sequence[str]) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=False).stdout
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return out.strip().splitlines()[0] if out.strip() else "unknown"


def machine() -> dict[str, Any]:
    """The machine the figures come from: CPU model and count, memory, kernel, engine, Python."""
    cpu_model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gib = 0.0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_gib = round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return {
        "cpu_model": cpu_model,
        "cpus": os.cpu_count() or 0,
        "memory_gib": mem_gib,
        "kernel": platform.release(),
        "os": _first_line(["sh", "-c", ". /etc/os-release && echo $PRETTY_NAME"]),
        "docker": _first_line(["docker", "version", "--format", "{{.Server.Version}}"]),
        "python": platform.python_version(),
    }


def output_dir(smoke: bool) -> Path:
    """Where a run writes its result: bench/results for a full run, a scratch folder for a smoke run."""
    if not smoke:
        RESULTS_DIR.mkdir(parents=True, exist_ok=True)
        return RESULTS_DIR
    folder = Path(os.environ.get(SMOKE_DIR_ENV) or (Path("/tmp") / "ovms-bench-smoke"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def write_result(
    name: str,
    *,
    smoke: bool,
    ratios: Mapping[str, Any],
    raw: Mapping[str, Any],
    params: Mapping[str, Any],
    spreads: Mapping[str, Mapping[str, float] | None] | None = None,
    noise: Mapping[str, Any] | None = None,
) -> Path:
    """Write `<name>.json`: date, machine, parameters, the ratios with their spreads (and which are
    noisy), the machine's own noise in this run, and the raw figures."""
    spreads = {key: spreads.get(key) for key in ratios} if spreads is not None else {}
    doc = {
        "benchmark": name,
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "smoke": smoke,
        "machine": machine(),
        "params": dict(params),
        "ratios": dict(ratios),
        "spreads": spreads,
        "noisy": noisy_keys(spreads),
        "machine_noise": dict(noise) if noise is not None else None,
        "raw": dict(raw),
    }
    path = output_dir(smoke) / f"{name}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(doc, indent=2, sort_keys=False) + "\n")
    tmp.replace(path)
    return path


def load_result(name: str, folder: Path = RESULTS_DIR) -> dict[str, Any] | None:
    path = folder / f"{name}.json"
    if not path.exists():
        return None
    return json.loads(path.read_text())


def _range(bounds: Mapping[str, float] | None) -> str:
    if not bounds:
        return ""
    noisy = " NOISY" if (relative_spread(bounds) or 0.0) > NOISY_SPREAD else ""
    return f" [{bounds['min']}..{bounds['max']}{noisy}]"


def print_ratios(
    title: str,
    ratios: Mapping[str, Any],
    targets: Sequence[Target],
    spreads: Mapping[str, Mapping[str, float] | None] | None = None,
) -> bool:
    """Print the ratios last, one per line with its spread [min..max] and target; True when every
    target with a value is met."""
    by_key = {t.key: t for t in targets}
    spreads = spreads or {}
    ok = True
    print(f"\n== {title}: ratios ==", flush=True)
    for key, value in ratios.items():
        target = by_key.get(key)
        shown = f"{value}{_range(spreads.get(key))}"
        if target is None:
            print(f"{key} = {shown}")
            continue
        met = target.met(value if isinstance(value, (int, float)) else None)
        mark = "n/a" if met is None else ("met" if met else "MISSED")
        ok = ok and met is not False
        print(f"{key} = {shown}   (target {target.op} {target.limit}: {mark}; {target.what})")
    sys.stdout.flush()
    return ok


# The targets (ratios on the 2-core machine). `bench.report` shows each against its value.
TARGETS: tuple[Target, ...] = (
    Target("mtls_pipelined_over_inprocess", ">=", 0.90, "client via mTLS, pipelined ÷ in-process throughput"),
    Target("pipelined_over_sync", ">=", 1.2, "pipelined ÷ synchronous throughput (mTLS path)"),
    Target("proxy_added_p50_ms", "<=", 1.0, "p50 latency added by the mTLS proxy, synchronous mode"),
    Target("density_mtls_over_inprocess", ">=", 0.9, "streams ≥ 15 FPS via mTLS ÷ in-process"),
    Target("wire_raw_over_jpeg", ">=", 8.0, "bytes sent per frame, raw tensor ÷ JPEG (mTLS, pipelined)"),
    Target(
        "link50_density_jpeg_over_raw", ">=", 4.0, "streams ≥ 15 FPS through a 50 Mbit/s link, JPEG ÷ raw"
    ),
    Target(
        "proxy_added_jpeg_over_raw", "<=", 0.4, "latency the mTLS proxy adds to a JPEG frame ÷ to a raw one"
    ),
    Target(
        "cascade_4crops_over_1crop_latency",
        "<=",
        1.6,
        "cascade frame latency, 4 faces ÷ 1 face (face-detection -> face-landmarks; crops concurrent)",
    ),
    Target(
        "cascade_overhead_over_model_time",
        "<=",
        1.5,
        "cascade frame latency (4 faces) ÷ server inference time on its critical path",
    ),
    Target("warm_redeploy_s", "<=", 6.0, "warm re-deploy, nothing changed"),
    Target("warm_redeploy_changed", "<=", 0, "tasks changed by the warm re-deploy"),
    Target("cold_over_compose", "<=", 2.5, "cold launcher deploy ÷ docker-compose up to AVAILABLE"),
    Target("cli_help_s", "<=", 0.3, "wall seconds of `launcher --help` (the CLI's start-up)"),
    Target("fleet8_over_fleet1", "<=", 2.0, "deploy of 8 hosts ÷ 1 host"),
    Target(
        "controller_cpu_s_per_host",
        "<=",
        1.0,
        "controller CPU-seconds per added client host (slope over 1/2/4/8)",
    ),
    Target(
        "ee_over_plain_deploy",
        "<=",
        1.3,
        "cold deploy of the largest fleet inside the execution environment (--ee) ÷ the same without",
    ),
    Target(
        "diff_over_warm_redeploy",
        "<=",
        1.5,
        "`launcher diff` of the largest fleet, deployed ÷ a warm re-deploy of it (same trial)",
    ),
    Target(
        "validate_1000_hosts_s",
        "<=",
        1.5,
        "wall seconds of `launcher validate` on a generated 1,000-host, 200-site inventory",
    ),
)


def stop_on_sigterm() -> None:
    """Turn SIGTERM into KeyboardInterrupt, so a killed benchmark still runs its cleanup (`finally`)."""
    import signal

    def _raise(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, _raise)


def conclude(
    name: str,
    title: str,
    ratios: Mapping[str, Any],
    smoke: bool,
    spreads: Mapping[str, Mapping[str, float] | None] | None = None,
) -> int:
    """End of a benchmark run: a full run regenerates latest.json and docs/benchmarks.md, then the
    ratios are printed last. Returns the exit code (0: a missed target is a finding, not an error)."""
    if not smoke:
        from bench.report import regenerate

        print(f"[{name}] wrote {regenerate()}", flush=True)
    print_ratios(title, ratios, TARGETS, spreads)
    return 0
