"""The inference-path benchmark, short: one round of the nine configurations (in-process, gRPC, mTLS;
sync and pipelined; JPEG frames) and density capped at 2 streams, also through a 50 Mbit/s link, into
a scratch folder."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench import inference
from testbed.paths import PROJECT_ROOT

pytestmark = [pytest.mark.docker, pytest.mark.slow]

RATIO_KEYS = list(inference.RATIO_ORDER)
# ratios that may come out None in one round: the proxy's raw latency difference can be within noise
MAY_BE_NONE = {"proxy_added_jpeg_over_raw"}


def test_inference_benchmark_smoke_run(tmp_path: Path):
    env = {**os.environ, "OVMS_BENCH_SMOKE_DIR": str(tmp_path)}
    proc = subprocess.run(
        [sys.executable, "-m", "bench.inference", "--smoke"],
        cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=480, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    # the ratios come last, one per line
    tail = proc.stdout.strip().splitlines()[-len(RATIO_KEYS) :]
    assert [line.split(" = ")[0] for line in tail] == RATIO_KEYS, proc.stdout[-2000:]
    result = json.loads((tmp_path / "inference.json").read_text())
    assert result["smoke"] is True
    ratios = result["ratios"]
    for key in RATIO_KEYS:
        if key in MAY_BE_NONE and ratios[key] is None:
            continue
        assert isinstance(ratios[key], (int, float)) and math.isfinite(ratios[key]), (key, ratios)
    # a JPEG of the 300x300 frame is a small fraction of the 270 kB tensor; a 50 Mbit/s link never
    # carries two raw streams at 15 FPS (65 Mbit/s), JPEG ones at least as many as raw
    density = result["raw"]["density"]
    assert ratios["wire_raw_over_jpeg"] >= 4, result["raw"]["paths"]
    assert ratios["link50_density_raw"] <= 1 <= ratios["link50_density_jpeg"], density
    assert all(not s["passed"] for s in density["link50_raw"]["steps"] if s["streams"] >= 2), density
    assert 1 <= ratios["density_inprocess"] <= 2 and 1 <= ratios["density_mtls"] <= 2, result["raw"][
        "density"
    ]
    # every configuration delivered frames, and its CPU was measured (cgroup / proc counters found)
    for path, mode in inference.CONFIGS:
        cell = result["raw"]["paths"][path][mode]
        assert cell["fps"] > 0 and cell["p50_ms"] > 0, (path, mode, cell)
        assert cell["cpu_ms_per_frame"] > 0, (path, mode, cell)
        assert cell["trials"][0]["not_ok"] == 0, (path, mode, cell)
        assert (cell["tx_bytes_per_frame"] is None) == (path == "inprocess"), (path, mode, cell)
    assert set(result["raw"]["paths"]["mtls"]["pipelined"]["trials"][0]["cpu_split_ms_per_frame"]) == {
        "client",
        "server",
        "proxy",
    }
    # the charts: drawn by the run into the scratch folder, and by render() for the report
    for chart in ("throughput", "latency", "density"):
        assert (tmp_path / f"inference-{chart}.png").stat().st_size > 1000
    section = inference.render(result, tmp_path / "figs")
    assert "benchmarks/inference-density.png" in section
    assert (tmp_path / "figs" / "inference-throughput.png").stat().st_size > 1000
    # nothing of the benchmark is left behind
    for name in result["raw"]["docker"]["containers"]:
        left = subprocess.run(["docker", "ps", "-aq", "--filter", f"name=^{name}$"],
                              capture_output=True, text=True, check=False)  # fmt: skip
        assert left.stdout.split() == [], name
    network = result["raw"]["docker"]["network"]
    listed = subprocess.run(["docker", "network", "ls", "-q", "--filter", f"name=^{network}$"],
                            capture_output=True, text=True, check=False)  # fmt: skip
    assert listed.stdout.split() == [], network


@pytest.mark.models
def test_cascade_scenario_smoke_run(tmp_path: Path):
    """The cascade scenario alone, short: its ratios printed last and stored with their spreads, the
    four configurations with server times and per-stage figures, its report section; nothing left
    running."""
    from bench import inference_cascade as cascade

    env = {**os.environ, "OVMS_BENCH_SMOKE_DIR": str(tmp_path)}
    proc = subprocess.run(
        [sys.executable, "-m", "bench.inference_cascade", "--smoke"],
        cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    keys = list(cascade.RATIO_ORDER)
    tail = proc.stdout.strip().splitlines()[-len(keys) :]
    assert [line.split(" = ")[0] for line in tail] == keys, proc.stdout[-2000:]
    # the two targeted ratios print their target
    assert all("(target <= " in line for line in tail[:2]), tail
    result = json.loads((tmp_path / "inference_cascade.json").read_text())
    assert result["smoke"] is True
    for key in keys:
        value, bounds = result["ratios"][key], result["spreads"][key]
        assert isinstance(value, float) and math.isfinite(value) and value > 0, (key, result["ratios"])
        assert bounds["min"] <= bounds["median"] <= bounds["max"], (key, bounds)
    configs = result["raw"]["configs"]
    assert set(configs) == {f"{kind}_{frame}" for kind, frame in cascade.CONFIGS}
    frames_per_run = result["params"]["frames_per_run"] + result["params"]["warmup_frames"]
    for name, cell in configs.items():
        faces = cascade.FRAMES[cell["frame"]]
        assert cell["faces"] == [faces, faces, faces], (name, cell["faces"])
        assert cell["p50_ms"] > 0 and cell["critical_model_ms"] > 0, (name, cell)
        models = ["face-detection"] + (["face-landmarks"] if cell["kind"] == "cascade" else [])
        assert sorted(cell["server"]) == sorted(models), (name, cell["server"])
        assert sorted(cell["stages"]) == sorted(models), (name, cell["stages"])
        trial = cell["trials"][0]
        assert trial["not_ok"] == 0 and trial["failed_crops"] == 0, (name, trial)
        # stats.jsonl counted every request of the run: one per frame, one per face for the crops
        assert cell["stages"]["face-detection"]["requests"] == frames_per_run, (name, cell["stages"])
        if cell["kind"] == "cascade":
            assert cell["stages"]["face-landmarks"]["requests"] == faces * frames_per_run, cell["stages"]
            assert cell["stages"]["face-landmarks"]["latency_p50_ms"] > 0, cell["stages"]
    # the report section, with its chart
    section = cascade.render(result, tmp_path / "figs")
    assert all(f"`{key}`" in section for key in keys), section
    assert "benchmarks/inference-cascade.png" in section
    assert (tmp_path / "figs" / "inference-cascade.png").stat().st_size > 1000
    # nothing left behind: the scratch folder (and the double's config in it) is gone, no process
    # still runs from it
    workdir = result["raw"]["workdir"]
    assert not Path(workdir).exists(), workdir
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=True)
    assert [line for line in ps.stdout.splitlines() if workdir in line] == [], workdir
