"""The fleet deployment benchmark, short, on the session's harness: one cold deploy of 1 host and one
of 2 hosts, through the same code `python -m bench.fleet` runs (bench/fleet.py). It runs last in this
folder (file order): it loads the client image onto host1 too, for the one-host fleet."""

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
    measured = fleet.measure(multihost, tmp_path, sizes, trials=1)
    # the largest fleet, still deployed, also gets a warm re-deploy and `launcher diff` (one row)
    drift = [r for r in measured if r.get("kind") == "warm_diff"]
    assert [(r["size"], r["warm_changed"], r["diff_exit"]) for r in drift] == [(2, 0, 0)], drift
    assert drift[0]["diff_s"] > 0 and drift[0]["warm_s"] > 0, drift
    rows = [r for r in measured if r.get("kind") != "warm_diff"]
    assert [r["size"] for r in rows] == [1, 2]
    assert all(r["changed"] > 0 for r in rows), rows  # cold: every deploy really started from nothing
    ratios, spreads, raw = fleet.summarise(measured, sizes)
    assert ratios["diff_over_warm_redeploy"] > 0, ratios
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
