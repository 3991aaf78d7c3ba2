"""The fleet deployment benchmark, short, on the session's harness: one cold deploy of 1 host and one
of 2 hosts, through the same code `python -m bench.fleet` runs (bench/fleet.py). It runs last in this
folder (file order): it loads the client image onto host1 too, for the one-host fleet.

Without the drift rows (a warm re-deploy and `launcher diff` of the 2 hosts: about 80 s of CI):
test_fleet_rollout.py runs `launcher diff` on these hosts, and tests/unit/test_bench_fleet.py runs
bench.fleet.warm_and_diff and summarise's diff_over_warm_redeploy against a stand-in launcher."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from bench import fleet
from testbed.harness import Harness


@pytest.mark.slow
def test_fleet_benchmark_smoke(multihost: Harness, multihost_archive_dir: Path, tmp_path: Path):
    sizes = (1, 2)
    fleet.load_images(multihost, sizes, multihost_archive_dir)
    measured = fleet.measure(multihost, tmp_path, sizes, trials=1, drift=False)
    assert [r["size"] for r in measured] == [1, 2], measured
    assert all(r["changed"] > 0 for r in measured), measured  # cold: every deploy started from nothing
    ratios, spreads, raw = fleet.summarise(measured, sizes)
    assert fleet.DIFF_KEY not in ratios, ratios
    # two points one host apart: the slope is their difference
    slope = measured[1]["cpu_s"] - measured[0]["cpu_s"]
    assert ratios["controller_cpu_s_per_host"] == pytest.approx(slope, abs=0.011), ratios
    assert math.isfinite(ratios["fleet2_over_fleet1"]) and ratios["fleet2_over_fleet1"] > 0
    assert spreads["fleet2_over_fleet1"]["median"] == ratios["fleet2_over_fleet1"]  # one trial
    for size in ("1", "2"):
        per = raw["per_size_median"][size]
        assert per["seconds"] > 0 and per["cpu_s"] > 0 and per["peak_rss_mib"] > 0, per
    assert raw["profile_last_trial"]["2"], "no task profile read from the runs"
    result = {"params": {"sizes": list(sizes), "trials": 1}, "ratios": ratios, "raw": raw}
    section = fleet.render(result, tmp_path / "figs")
    assert "fleet2_over_fleet1" in section
    assert (tmp_path / "figs" / "deploy-fleet.png").stat().st_size > 1000
    # measure() destroyed what it deployed: no container of ours on any host
    for host in multihost.hosts[:2]:
        left = host.ssh.run(
            ["docker", "ps", "-aq", "--filter", "label=ovms-launcher.managed=true"], check=False
        )
        assert left.stdout.split() == [], f"{host.name}: {left.stdout}"
