"""The single-host deployment benchmark, short: one trial of cold and warm `launcher deploy` and of
docker-compose, into a scratch folder (so the committed results only come from full runs)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench import deploy
from testbed.paths import PROJECT_ROOT

pytestmark = [pytest.mark.docker, pytest.mark.slow]


def test_deploy_benchmark_smoke_run(tmp_path: Path):
    env = {**os.environ, "OVMS_BENCH_SMOKE_DIR": str(tmp_path)}
    proc = subprocess.run(
        [sys.executable, "-m", "bench.deploy", "--smoke"],
        cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    # the ratios come last, one per line
    tail = proc.stdout.strip().splitlines()[-3:]
    assert [line.split(" = ")[0] for line in tail] == [
        "warm_redeploy_s",
        "warm_redeploy_changed",
        "cold_over_compose",
    ]
    result = json.loads((tmp_path / "deploy.json").read_text())
    assert result["smoke"] is True
    ratios = result["ratios"]
    assert ratios["warm_redeploy_changed"] == 0, result["raw"]
    for key in ("warm_redeploy_s", "cold_over_compose"):
        assert math.isfinite(ratios[key]) and ratios[key] > 0, ratios
    trial = result["raw"]["trials"][0]
    assert trial["cold_changed"] > 0  # the cold deploy really started from nothing
    assert trial["compose_first_detection_s"] > 0 and trial["compose_available_s"] > 0
    assert result["raw"]["profile_last_trial"]["warm_slowest_tasks"], "no task profile read from the run"
    section = deploy.render(result, tmp_path / "figs")
    assert "benchmarks/deploy-single-host.png" in section
    assert (tmp_path / "figs" / "deploy-single-host.png").stat().st_size > 1000
    # nothing of the benchmark is left: neither the launcher's containers nor compose's
    for name in (result["params"]["site_tag"], result["params"]["compose_project"]):
        left = subprocess.run(["docker", "ps", "-aq", "--filter", f"name={name}"],
                              capture_output=True, text=True, check=False)  # fmt: skip
        assert left.stdout.split() == [], name
