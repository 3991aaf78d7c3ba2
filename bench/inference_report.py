"""Charts and the markdown section of the inference benchmark (`render`, called by bench.report)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.ticker import MaxNLocator

from bench import inference_cascade
from bench.common import NOISY_SPREAD, TARGETS, relative_spread

PATHS = ("inprocess", "grpc", "mtls", "grpc_jpeg", "mtls_jpeg")
MODES = ("sync", "pipelined")
LABELS = {
    "inprocess": "(a) in-process OpenVINO",
    "grpc": "(b) client → double, gRPC",
    "mtls": "(c) client → mTLS proxy → double",
    "grpc_jpeg": "(b) with JPEG frames",
    "mtls_jpeg": "(c) with JPEG frames",
}
SHORT = {
    "inprocess": "(a) in-process",
    "grpc": "(b) gRPC",
    "mtls": "(c) mTLS",
    "grpc_jpeg": "(b) JPEG",
    "mtls_jpeg": "(c) JPEG",
}
COLORS = {"sync": "#9ecae1", "pipelined": "#3182bd", "inprocess": "#31a354", "mtls": "#e6550d"}
# density searches: label and colour
SEARCHES = {
    "inprocess": ("(a) in-process", "#31a354"),
    "mtls": ("(c) mTLS", "#e6550d"),
    "link50_raw": ("(c) raw, 50 Mbit/s link", "#756bb1"),
    "link50_jpeg": ("(c) JPEG, 50 Mbit/s link", "#de2d26"),
}


def _fmt(value: Any, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return f"{value:.{digits}f}" if isinstance(value, float) else str(value)
    return str(value)


def _cell(paths: Mapping[str, Any], path: str, mode: str) -> Mapping[str, Any]:
    return paths.get(path, {}).get(mode, {})


def _throughput_chart(paths: Mapping[str, Any], target: Path) -> None:
    fig, (ax_fps, ax_cpu) = plt.subplots(1, 2, figsize=(11, 4.2))
    width = 0.38
    for i, mode in enumerate(MODES):
        xs, fps, low, high, cpu = [], [], [], [], []
        for j, path in enumerate(PATHS):
            cell = _cell(paths, path, mode)
            if cell.get("fps") is None:
                continue
            trials = [t["fps"] for t in cell.get("trials", [])] or [cell["fps"]]
            xs.append(j + (i - 0.5) * width)
            fps.append(cell["fps"])
            low.append(max(0.0, cell["fps"] - min(trials)))
            high.append(max(0.0, max(trials) - cell["fps"]))
            cpu.append(cell.get("cpu_ms_per_frame") or 0.0)
        bars = ax_fps.bar(xs, fps, width, yerr=[low, high], capsize=3, label=mode, color=COLORS[mode])
        ax_fps.bar_label(bars, fmt="%.0f", padding=2, fontsize=8)
        bars = ax_cpu.bar(xs, cpu, width, label=mode, color=COLORS[mode])
        ax_cpu.bar_label(bars, fmt="%.1f", padding=2, fontsize=8)
    for ax, title, unit in (
        (ax_fps, "Throughput, one stream (median of rounds, min-max)", "frames/s"),
        (ax_cpu, "CPU per frame (client + proxy + server)", "CPU ms / frame"),
    ):
        ax.set_xticks(range(len(PATHS)), [SHORT[p] for p in PATHS])
        ax.set_title(title, fontsize=10)
        ax.set_ylabel(unit)
        ax.legend(fontsize=8)
        ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(target, dpi=110)
    plt.close(fig)


def _latency_chart(paths: Mapping[str, Any], target: Path) -> None:
    fig, ax = plt.subplots(figsize=(11, 4.2))
    groups = [(p, m) for p in PATHS for m in MODES if _cell(paths, p, m)]
    width = 0.26
    for k, (key, shade) in enumerate((("p50_ms", "#c6dbef"), ("p95_ms", "#6baed6"), ("p99_ms", "#08519c"))):
        values = [_cell(paths, p, m).get(key) or 0.0 for p, m in groups]
        bars = ax.bar(
            [i + (k - 1) * width for i in range(len(groups))], values, width, label=key[:3], color=shade
        )
        ax.bar_label(bars, fmt="%.1f", padding=2, fontsize=7)
    ax.set_xticks(range(len(groups)), [f"{SHORT[p]}\n{m}" for p, m in groups], fontsize=8)
    ax.set_ylabel("request latency, ms")
    ax.set_title("Latency of one request (client side; median of rounds)", fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(target, dpi=110)
    plt.close(fig)


def _density_chart(density: Mapping[str, Any], stream_fps: float, target: Path) -> None:
    fig, (ax_steps, ax_max) = plt.subplots(1, 2, figsize=(11, 4.2), gridspec_kw={"width_ratios": [2, 1]})
    for name, (label, color) in SEARCHES.items():
        steps = density.get(name, {}).get("steps", [])
        if not steps:
            continue
        xs = [s["streams"] for s in steps]
        ys = [s["min_fps"] for s in steps]
        ax_steps.plot(xs, ys, "o", color=color, label=label, alpha=0.8)
        failed = [(x, y) for x, y, s in zip(xs, ys, steps, strict=True) if not s["passed"]]
        if failed:
            ax_steps.plot(*zip(*failed, strict=True), "x", color="black", markersize=9)
    ax_steps.axhline(stream_fps, color="grey", linestyle="--", linewidth=1, label=f"{stream_fps:.0f} FPS")
    ax_steps.set_ylim(0, stream_fps * 1.25)
    ax_steps.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax_steps.set_xlabel("streams")
    ax_steps.set_ylabel("slowest stream, FPS")
    ax_steps.set_title("Density steps (x = a stream fell below 15 FPS)", fontsize=10)
    ax_steps.legend(fontsize=8)
    ax_steps.grid(alpha=0.3)
    names = [n for n in SEARCHES if n in density]
    values = [density[n].get("max_streams", 0) for n in names]
    bars = ax_max.bar(
        [SEARCHES[n][0].replace(", ", "\n") for n in names], values, color=[SEARCHES[n][1] for n in names]
    )
    ax_max.tick_params(axis="x", labelsize=7)
    ax_max.bar_label(bars, padding=2)
    ax_max.set_ylabel("streams at ≥ 15 FPS each")
    ax_max.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax_max.set_title("Stream density", fontsize=10)
    ax_max.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(target, dpi=110)
    plt.close(fig)


def _wire_chart(paths: Mapping[str, Any], density: Mapping[str, Any], target: Path) -> None:
    """Bytes each frame puts on the wire, raw vs JPEG, and what a 50 Mbit/s uplink carries then."""
    fig, (ax_bytes, ax_link) = plt.subplots(1, 2, figsize=(11, 4.2))
    names = [("mtls", "raw tensor"), ("mtls_jpeg", "JPEG")]
    sent = [(_cell(paths, p, "pipelined").get("tx_bytes_per_frame") or 0.0) / 1000 for p, _ in names]
    bars = ax_bytes.bar([n for _, n in names], sent, color=["#756bb1", "#de2d26"])
    ax_bytes.bar_label(bars, fmt="%.1f kB", padding=2, fontsize=8)
    ax_bytes.set_ylabel("kB sent per frame (client's eth0)")
    ax_bytes.set_title("Bytes on the wire per frame, through the mTLS proxy", fontsize=10)
    ax_bytes.grid(axis="y", alpha=0.3)
    links = [n for n in ("link50_raw", "link50_jpeg") if n in density]
    streams = [density[n].get("max_streams", 0) for n in links]
    bars = ax_link.bar([SEARCHES[n][0] for n in links], streams, color=[SEARCHES[n][1] for n in links])
    ax_link.bar_label(bars, padding=2)
    ax_link.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax_link.set_ylabel("streams at ≥ 15 FPS each")
    ax_link.set_title("Cameras a 50 Mbit/s store uplink carries (mTLS)", fontsize=10)
    ax_link.tick_params(axis="x", labelsize=8)
    ax_link.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(target, dpi=110)
    plt.close(fig)


def _bounds(bounds: Mapping[str, Any] | None, digits: int = 3) -> str:
    if not bounds:
        return "-"
    noisy = " **noisy**" if (relative_spread(bounds) or 0.0) > NOISY_SPREAD else ""
    return f"{_fmt(bounds['min'], digits)}..{_fmt(bounds['max'], digits)}{noisy}"


def _ratio_rows(ratios: Mapping[str, Any], spreads: Mapping[str, Any]) -> list[str]:
    targets = {t.key: t for t in TARGETS}
    rows = ["| ratio | value | spread (min..max) | target | met |", "|---|---|---|---|---|"]
    for key, value in ratios.items():
        if key in inference_cascade.RATIO_ORDER:
            continue  # in the cascade's own section
        target = targets.get(key)
        shown = _bounds(spreads.get(key))
        if target is None:
            rows.append(f"| `{key}` | {_fmt(value, 3)} | {shown} | - | - |")
            continue
        met = target.met(value if isinstance(value, (int, float)) else None)
        mark = "n/a" if met is None else ("yes" if met else "**no**")
        rows.append(f"| `{key}` | {_fmt(value, 3)} | {shown} | {target.op} {target.limit:g} | {mark} |")
    return rows


def _ranged(cell: Mapping[str, Any], key: str, digits: int) -> str:
    """A figure's median over the rounds, with the min..max of its trials when they differ."""
    values = [t[key] for t in cell.get("trials", []) if t.get(key) is not None]
    median_value = cell.get(key)
    if len(values) < 2:
        return _fmt(median_value, digits)
    return f"{_fmt(median_value, digits)} ({_fmt(min(values), digits)}..{_fmt(max(values), digits)})"


def _cpu_rows(paths: Mapping[str, Any]) -> list[str]:
    """Where the CPU of a frame goes (pipelined), and what the remote path adds over in-process."""
    rows = [
        "CPU per frame by component, pipelined (ms; the client's share includes decoding and "
        "preprocessing, in-process also the inference):",
        "",
        "| path | client | proxy | server | total | more than in-process |",
        "|---|---|---|---|---|---|",
    ]
    base = _cell(paths, "inprocess", "pipelined").get("cpu_ms_per_frame")
    for path in PATHS:
        cell = _cell(paths, path, "pipelined")
        if not cell:
            continue
        split = cell.get("cpu_split_ms_per_frame", {})
        total = cell.get("cpu_ms_per_frame")
        extra = total - base if total is not None and base is not None else None
        rows.append(
            f"| {LABELS[path]} | {_fmt(split.get('client'), 2)} | {_fmt(split.get('proxy'), 2)} | "
            f"{_fmt(split.get('server'), 2)} | {_fmt(total, 2)} | {_fmt(extra, 2)} |"
        )
    mtls = _cell(paths, "mtls", "pipelined")
    trials = mtls.get("trials", [])
    if base is not None and mtls.get("cpu_ms_per_frame") is not None and trials:
        busy = sum(t["machine_cpu_s"] / t["window_s"] for t in trials) / len(trials)
        proxy = mtls.get("cpu_split_ms_per_frame", {}).get("proxy")
        rows += [
            "",
            f"While (c) ran pipelined the machine was busy {busy:.2f} cores on average: when that is all "
            "of its cores the pipelined figures are CPU-bound, and the throughput ratio follows the CPU "
            f"per frame. (c) spends {mtls['cpu_ms_per_frame'] - base:.2f} ms more per frame than (a): the "
            f"proxy {_fmt(proxy, 2)} ms (TLS and HTTP/2 relaying in nginx), the rest is gRPC "
            "serialisation and transport in the client and the double's Python gRPC front end (the real "
            "OVMS front end is C++) on top of the same OpenVINO inference.",
        ]
    return rows


def render(result: Mapping[str, Any], figdir: Path) -> str:
    """Draw inference-*.png into figdir and return the benchmark's markdown section."""
    figdir.mkdir(parents=True, exist_ok=True)
    raw = result.get("raw", {})
    params = result.get("params", {})
    paths = raw.get("paths", {})
    density = raw.get("density", {})
    stream_fps = float(params.get("density", {}).get("stream_fps", 15.0))
    _throughput_chart(paths, figdir / "inference-throughput.png")
    _latency_chart(paths, figdir / "inference-latency.png")
    _density_chart(density, stream_fps, figdir / "inference-density.png")
    _wire_chart(paths, density, figdir / "inference-wire.png")

    server = params.get("server", {})
    proxy = params.get("proxy", {})
    client = params.get("client", {})
    lines = [
        "## Inference path and stream density",
        "",
        f"Run {result.get('date', '?')}{' (smoke run)' if result.get('smoke') else ''}; "
        f"{params.get('rounds', '?')} round(s) of {_fmt(params.get('warmup_s'), 0)} s warm-up + "
        f"{_fmt(params.get('measure_s'), 0)} s measured per configuration, all nine configurations in "
        "every round (rotated order); medians reported, ratios are medians of per-round ratios.",
        "",
        f"- Model: {params.get('model', '?')}; frames: {params.get('frames', '?')}.",
        "- (a) `bench/inference_inprocess.py`: the client's own code (sources, preprocessing, pipelining, "
        "decoders) with OpenVINO compiled in the same process, "
        f"plugin config `{params.get('inprocess', {}).get('plugin_config')}`, "
        f"{params.get('inprocess', {}).get('nireq', '?')} infer requests.",
        f"- (b) the client container → the OVMS double container over plain gRPC; double config "
        f"`{server.get('config_json')}`, flags `{server.get('flags')}`, "
        f"{server.get('nireq_effective', '?')} infer requests.",
        "- (c) the client container → the tls-proxy container (nginx, mTLS, TLS 1.3) → the same double; "
        f"site config `{proxy.get('site_template', '?')}` rendered with the role's defaults "
        f"({', '.join(f'{k} {v}' for k, v in proxy.get('role_defaults', {}).items())}); the image's "
        f"nginx.conf sets {'; '.join(f'`{d}`' for d in proxy.get('image_nginx_conf', []))}.",
        f"- Client: synchronous `{client.get('sync', {}).get('CLIENT_MODE')}` = one request in flight; "
        f"pipelined = `CLIENT_MAX_IN_FLIGHT={client.get('pipelined', {}).get('CLIENT_MAX_IN_FLIGHT')}`; "
        f"{client.get('where', '')}.",
        "- CPU per frame: CPU seconds of every process involved (cgroup counters of the client, proxy "
        "and double containers; /proc of the in-process client) over the measured window ÷ frames.",
        f"- JPEG: (b) and (c) again with `encoding: jpeg` (quality {params.get('jpeg_quality', '?')}): "
        "the client resizes each frame to 300x300 and sends one JPEG in a KServe BYTES input, which the "
        "double decodes with OpenCV. Sent per frame: bytes out of the client container's eth0 over the "
        "measured window ÷ frames (gRPC, HTTP/2 and TLS included).",
        f"- Link: {params.get('link', {}).get('how', '-')}.",
        "",
        "Figures: median of the rounds, and (min..max) of the rounds where there are several.",
        "",
        "| path | mode | frames/s | p50 ms | p95 ms | p99 ms | CPU ms/frame | sent kB/frame |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for path in PATHS:
        for mode in MODES:
            cell = _cell(paths, path, mode)
            if not cell:
                continue
            sent = cell.get("tx_bytes_per_frame")
            lines.append(
                f"| {LABELS[path]} | {mode} | {_ranged(cell, 'fps', 1)} | {_ranged(cell, 'p50_ms', 2)} | "
                f"{_fmt(cell.get('p95_ms'), 2)} | {_fmt(cell.get('p99_ms'), 2)} | "
                f"{_ranged(cell, 'cpu_ms_per_frame', 2)} | {_fmt(sent / 1000 if sent else None, 1)} |"
            )
    lines += ["", *_cpu_rows(paths)]
    dens = params.get("density", {})
    lines += [
        "",
        f"Stream density (reference method): streams paced at {stream_fps:.0f} FPS each are added while "
        f"{dens.get('pass', 'every stream keeps 15 FPS')} ({_fmt(dens.get('measure_s'), 0)} s measured "
        f"per step); each step runs {dens.get('step_runs', 'once')}, the majority deciding, and the "
        "density's spread is one stream less where its step passed only by a majority, one more where "
        "the next failed only by a majority. "
        "(a) runs N streams in one process sharing one compiled model; (c) runs N streams in one client "
        "container through the proxy to one double, with no link limit, then raw and JPEG through the "
        "50 Mbit/s link.",
        "",
        "| search | max streams (min..max) | steps (streams: slowest stream FPS) |",
        "|---|---|---|",
    ]
    for name, (label, _color) in SEARCHES.items():
        info = density.get(name, {})
        if not info:
            continue
        steps = ", ".join(
            f"{s['streams']}: {s['min_fps']:.1f}{'' if s['passed'] else ' ✗'}" for s in info.get("steps", [])
        )
        bounds = info.get("bounds") or {}
        shown = f"{info.get('max_streams', '-')} ({bounds.get('min', '-')}..{bounds.get('max', '-')})"
        lines.append(f"| {label} | {shown} | {steps} |")
    lines += ["", *_ratio_rows(result.get("ratios", {}), result.get("spreads") or {}), ""]
    noise = result.get("machine_noise") or {}
    if noise:
        before, after = noise.get("before_ms") or {}, noise.get("after_ms") or {}
        lines += [
            f"Machine noise in this run: the calibration loop took {before.get('median')} ms "
            f"({before.get('min')}..{before.get('max')}) before and {after.get('median')} ms "
            f"({after.get('min')}..{after.get('max')}) after (drift {noise.get('drift')}, spread "
            f"{noise.get('spread', 0):.0%}).",
            "",
        ]
    lines += [
        "![Throughput and CPU per frame](benchmarks/inference-throughput.png)",
        "",
        "![Latency percentiles](benchmarks/inference-latency.png)",
        "",
        "![Stream density](benchmarks/inference-density.png)",
        "",
        "![Bytes per frame and cameras per uplink](benchmarks/inference-wire.png)",
        "",
    ]
    cascade = inference_cascade.render(result, figdir)
    if cascade:
        lines += [cascade]
    return "\n".join(lines)
