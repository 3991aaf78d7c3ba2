"""The inference benchmark without Docker: density search, per-round ratios, the proxy config it
renders from the role, the charts, and configuration (a) (the client with OpenVINO in-process)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench import inference
from bench.inference import Density, Trial, ratios_of, route, start_estimate
from bench.inference_inprocess import main as inprocess_main
from bench.inference_setup import render_proxy_config
from launcher.media import ensure_sample_media
from launcher.models import prepare_models
from testbed.paths import PROJECT_ROOT

PROFILE = PROJECT_ROOT / "profiles" / "person-detection"


def trial(
    path: str,
    mode: str,
    fps: float,
    p50: float = 10.0,
    stream_fps: list[float] | None = None,
    r: int = 0,
    tx: float | None = None,
) -> Trial:
    return Trial(
        path=path,
        mode=mode,
        streams=len(stream_fps or [fps]),
        target_fps=0,
        window_s=8.0,
        frames=int(fps * 8),
        not_ok=0,
        fps=fps,
        stream_fps=stream_fps or [fps],
        p50_ms=p50,
        p95_ms=p50 * 2,
        p99_ms=p50 * 3,
        cpu_s=1.0,
        cpu_ms_per_frame=12.0,
        cpu_split_ms_per_frame={"client": 3.0, "server": 9.0},
        machine_cpu_s=16.0,
        round=r,
        tx_bytes_per_frame=tx,
    )


def test_density_runs_each_step_until_two_runs_agree():
    search = Density("mtls", start=3, cap=32, agree=True)
    outcomes = {3: [True, True], 4: [True, True], 5: [False, False]}
    while not search.done:
        streams = search.current
        search.record(streams, outcomes[streams].pop(0), trial("mtls", "pipelined", 15.0 * streams))
    assert search.best == 4
    assert [s["streams"] for s in search.steps] == [3, 3, 4, 4, 5, 5]
    assert search.bounds() == {"min": 4, "median": 4, "max": 4}  # every decision unanimous


def test_density_a_third_run_decides_when_two_disagree():
    search = Density("mtls", start=2, cap=32, agree=True)
    outcomes = {2: [False, True, True], 3: [True, False, False]}
    while not search.done:
        streams = search.current
        search.record(streams, outcomes[streams].pop(0), trial("mtls", "pipelined", 15.0))
    assert search.best == 2 and [s["streams"] for s in search.steps] == [2, 2, 2, 3, 3, 3]
    # 2 passed by a majority only, 3 failed by a majority only: the density is 1 to 3
    assert search.bounds() == {"min": 1, "median": 2, "max": 3}


def test_density_steps_down_from_a_failing_start_and_stops_at_the_cap():
    down = Density("inprocess", start=6, cap=32, agree=False)
    outcomes = {6: False, 5: False, 4: True}
    while not down.done:
        down.record(down.current, outcomes[down.current], trial("inprocess", "pipelined", 15.0))
    assert down.best == 4 and [s["streams"] for s in down.steps] == [6, 5, 4]
    capped = Density("inprocess", start=1, cap=2, agree=False)
    while not capped.done:
        capped.record(capped.current, True, trial("inprocess", "pipelined", 15.0))
    assert capped.best == 2 and len(capped.steps) == 2
    none = Density("mtls", start=1, cap=2, agree=False)
    none.record(1, False, trial("mtls", "pipelined", 10.0))
    assert none.done and none.best == 0


def test_a_stream_keeps_15_fps_within_tolerance_and_one_frame():
    assert trial("mtls", "pipelined", 30.0, stream_fps=[15.0, 14.6]).keeps(15.0)  # 14.7 - 1/8 s
    assert not trial("mtls", "pipelined", 30.0, stream_fps=[15.0, 14.5]).keeps(15.0)
    failed = trial("mtls", "pipelined", 30.0, stream_fps=[15.0, 15.0])
    failed.not_ok = 1
    assert not failed.keeps(15.0)


def test_ratios_pair_each_round_then_take_the_median():
    trials = []
    for r, (inproc, mtls_pipe, mtls_sync, grpc_p50, mtls_p50) in enumerate(
        [(100.0, 90.0, 60.0, 10.0, 10.5), (50.0, 40.0, 20.0, 20.0, 21.0), (100.0, 95.0, 50.0, 10.0, 10.2)]
    ):
        trials += [
            trial("inprocess", "pipelined", inproc, r=r),
            trial("inprocess", "sync", inproc / 2, r=r),
            trial("grpc", "sync", 50.0, p50=grpc_p50, r=r),
            trial("mtls", "sync", mtls_sync, p50=mtls_p50, r=r),
            trial("mtls", "pipelined", mtls_pipe, r=r),
        ]
    ratios = ratios_of(trials, 3)
    assert ratios["mtls_pipelined_over_inprocess"] == 0.9  # rounds: 0.9, 0.8, 0.95
    assert ratios["pipelined_over_sync"] == 1.9  # rounds: 1.5, 2.0, 1.9
    assert ratios["proxy_added_p50_ms"] == 0.5  # rounds: 0.5, 1.0, 0.2


def test_every_ratio_has_the_spread_of_its_rounds():
    trials = []
    for r, (inproc, mtls_pipe) in enumerate([(100.0, 90.0), (50.0, 40.0), (100.0, 95.0)]):
        trials += [
            trial("inprocess", "pipelined", inproc, r=r),
            trial("inprocess", "sync", inproc / 2, r=r),
            trial("grpc", "sync", 50.0, r=r),
            trial("mtls", "sync", 50.0, r=r),
            trial("mtls", "pipelined", mtls_pipe, r=r),
        ]
    spreads = inference.spreads_of(trials, 3)
    assert spreads["mtls_pipelined_over_inprocess"] == {"min": 0.8, "median": 0.9, "max": 0.95}
    assert spreads["wire_raw_over_jpeg"] is None  # no JPEG trial: nothing to spread


def test_a_density_ratio_spreads_over_both_searches_bounds():
    top = Density("mtls", start=4, cap=32, agree=True)
    top.best, top.runs = 4, {4: [True, True], 5: [False, True, False]}
    bottom = Density("inprocess", start=5, cap=32, agree=True)
    bottom.best, bottom.runs = 5, {5: [True, False, True], 6: [False, False]}
    value, bounds = inference.density_ratio(top, bottom)
    assert value == 0.8
    assert bounds == {"min": round(4 / 5, 3), "median": 0.8, "max": round(5 / 4, 3)}
    nothing = Density("inprocess", start=1, cap=2, agree=False)
    assert inference.density_ratio(top, nothing) == (None, None)


def test_jpeg_ratios_pair_each_round_then_take_the_median():
    trials = []
    # per round: raw and JPEG bytes sent per frame (mTLS pipelined); sync p50 of grpc/mtls, raw and JPEG
    for r, (raw_kb, jpeg_kb, raw_p50s, jpeg_p50s) in enumerate(
        [
            (270, 27, (8.0, 9.0), (9.0, 9.3)),
            (272, 24, (8.0, 8.5), (9.0, 9.05)),
            (271, 30, (8.0, 8.02), (9, 9.2)),
        ]
    ):
        trials += [
            trial("inprocess", "pipelined", 100.0, r=r),
            trial("inprocess", "sync", 50.0, r=r),
            trial("grpc", "sync", 50.0, p50=raw_p50s[0], r=r),
            trial("mtls", "sync", 50.0, p50=raw_p50s[1], r=r),
            trial("mtls", "pipelined", 90.0, r=r, tx=raw_kb * 1000.0),
            trial("grpc_jpeg", "sync", 50.0, p50=jpeg_p50s[0], r=r),
            trial("mtls_jpeg", "sync", 50.0, p50=jpeg_p50s[1], r=r),
            trial("mtls_jpeg", "pipelined", 90.0, r=r, tx=jpeg_kb * 1000.0),
        ]
    ratios = ratios_of(trials, 3)
    assert ratios["wire_raw_over_jpeg"] == 10.0  # rounds: 10.0, 11.33, 9.03
    # rounds: 0.3 / 1.0, 0.05 / 0.5; the third's raw difference (0.02 ms) is noise: no ratio
    assert ratios["proxy_added_jpeg_over_raw"] == 0.2


def test_density_starts_below_what_the_cpu_and_the_link_allow():
    assert start_estimate("mtls", None, 160.0, 270_000) == 9  # CPU: 160 / 15 - 1
    assert start_estimate("mtls", "50mbit", 160.0, 270_000) == 1  # 50e6 / (270e3 * 8 * 15) = 1.5 -> 1
    assert start_estimate("mtls_jpeg", "50mbit", 160.0, 25_000) == 9  # the link allows 16: CPU first


def test_routes_name_the_path_and_the_encoding():
    assert route("mtls_jpeg") == ("mtls", "jpeg") and route("grpc") == ("grpc", "raw")


def test_proxy_config_comes_from_the_role_template_and_defaults():
    text, tuning = render_proxy_config("ovms-bench-double-x")
    assert "{{" not in text and "{%" not in text
    assert "server ovms-bench-double-x:9000;" in text
    assert "listen 9443 ssl http2;" in text
    assert "ssl_verify_client on;" in text
    assert f"keepalive {tuning['ovms_tls_keepalive']};" in text


def test_render_draws_the_charts_and_the_tables(tmp_path: Path):
    trials = [
        trial(p, m, 80.0 if m == "pipelined" else 50.0) for p in inference.PATHS for m in inference.MODES
    ]
    result = {
        "date": "2026-01-01T00:00:00+00:00",
        "smoke": False,
        "params": {"rounds": 1, "density": {"stream_fps": 15.0, "measure_s": 8}},
        "ratios": {"mtls_pipelined_over_inprocess": 0.95, "density_mtls_over_inprocess": 0.8},
        "spreads": {
            "mtls_pipelined_over_inprocess": {"min": 0.9, "median": 0.95, "max": 1.0},
            "density_mtls_over_inprocess": {"min": 0.6, "median": 0.8, "max": 1.1},
        },
        "machine_noise": {
            "before_ms": {"min": 50.0, "median": 51.0, "max": 53.0},
            "after_ms": {},
            "spread": 0.04,
        },
        "raw": {
            "paths": inference.summarize(trials),
            "density": {
                "inprocess": {"max_streams": 5, "steps": [{"streams": 5, "min_fps": 15.0, "passed": True}]},
                "mtls": {"max_streams": 4, "steps": [{"streams": 5, "min_fps": 13.0, "passed": False}]},
            },
        },
    }
    section = inference.render(json.loads(json.dumps(result)), tmp_path)
    for chart in ("throughput", "latency", "density", "wire"):
        assert (tmp_path / f"inference-{chart}.png").stat().st_size > 1000
        assert f"(benchmarks/inference-{chart}.png)" in section
    assert "| `mtls_pipelined_over_inprocess` | 0.950 | 0.900..1.000 | >= 0.9 | yes |" in section
    assert "| `density_mtls_over_inprocess` | 0.800 | 0.600..1.100 **noisy** | >= 0.9 | **no** |" in section
    assert "| (c) client → mTLS proxy → double | 3.00 | - | 9.00 | 12.00 | 0.00 |" in section
    assert "the calibration loop took 51.0 ms (50.0..53.0) before" in section


@pytest.mark.slow
def test_inprocess_configuration_runs_the_client_with_openvino(tmp_path: Path):
    model = prepare_models(names=["person-detection"])[0]
    media = ensure_sample_media()
    env = {
        **os.environ,
        "BENCH_OV_MODEL_DIR": str(model.path),
        "BENCH_OV_PLUGIN_CONFIG": '{"PERFORMANCE_HINT": "THROUGHPUT"}',
        "CLIENT_INPUT": str(media.video),
        "CLIENT_TARGET_FPS": "0",
        "CLIENT_MAX_IN_FLIGHT": "3",
        "CLIENT_SNAPSHOT_INTERVAL_S": "0",
        "OVMS_RESULTS_DIR": str(tmp_path),
    }
    env.pop("OVMS_ADDRESS", None)
    proc = subprocess.run(
        [sys.executable, "-m", "bench.inference_inprocess", "--profile", str(PROFILE), "--max-frames", "12"],
        cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    records = [json.loads(line) for line in (tmp_path / "detections.jsonl").read_text().splitlines()]
    assert [r["frame"] for r in records] == list(range(12))
    assert all(r["status"] == "ok" for r in records)
    people = [r for r in records if any(d["label"] == "person" for d in r["detections"])]
    assert len(people) >= 10  # a person is visible in every frame of the sample video


def test_inprocess_configuration_names_a_missing_model_dir(monkeypatch: pytest.MonkeyPatch, capsys):
    monkeypatch.delenv("BENCH_OV_MODEL_DIR", raising=False)
    monkeypatch.setenv("OVMS_RESULTS_DIR", "/nonexistent-results")
    code = inprocess_main(["--profile", str(PROFILE), "--max-frames", "1"])
    assert code == 2
    assert "BENCH_OV_MODEL_DIR" in capsys.readouterr().err


def test_a_failed_density_step_is_logged_and_recorded_as_missing_the_rate():
    failed = Trial.failed("inprocess", "pipelined", 2, 15.0, "no result from the client within 90s:")
    assert not failed.keeps(15.0)
    line = inference._trial_line(failed)
    assert "streams=2" in line and "min_stream_fps=-" in line and "p50=-ms" in line
    search = Density("inprocess", start=2, cap=4, agree=False)
    search.best = 1
    search.record(2, failed.keeps(15.0), failed)
    assert search.done and search.best == 1
    assert search.steps[-1]["min_fps"] == 0.0 and search.steps[-1]["error"].startswith("no result")
