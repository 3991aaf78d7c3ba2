"""bench.fleet's drift rows (a warm re-deploy and `launcher diff` of the largest fleet) against a
stand-in launcher: the multi-host smoke run (tests/multihost/test_smoke_bench_fleet.py) leaves them
out, test_fleet_rollout.py runs `launcher diff` on real hosts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import fleet
from bench.launch import BenchError, LauncherResult
from bench.procstats import Measured


class StandIn:
    """Answers run_launcher: `deploy` changed nothing, `diff` exits with `diff_exit`."""

    def __init__(self, diff_exit: int):
        self.diff_exit = diff_exit
        self.calls: list[tuple[str, ...]] = []

    def __call__(self, args, *, env=None, check=True, timeout=1200) -> LauncherResult:
        self.calls.append(tuple(args))
        command = args[0]
        rc = self.diff_exit if command == "diff" else 0
        wall, cpu = {"deploy": (20.0, 8.0), "diff": (25.0, 9.0)}[command]
        summary = {"hosts": [{"host": "host1", "status": "ok", "changed": 0}]}
        measured = Measured(rc, json.dumps(summary), "", wall, cpu, 300.0)
        result = LauncherResult(tuple(args), measured, summary)
        if check and rc != 0:
            raise BenchError(result.describe())
        return result


@pytest.fixture
def bench_fleet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> fleet.Fleet:
    monkeypatch.setattr(fleet.Fleet, "inventory", lambda self, size: tmp_path / f"hosts-{size}.yml")
    return fleet.Fleet(harness=None, workdir=tmp_path)  # type: ignore[arg-type]


@pytest.mark.parametrize("diff_exit", [0, 3])
def test_warm_and_diff_times_both_and_keeps_the_exit(bench_fleet, monkeypatch, tmp_path, diff_exit):
    stand_in = StandIn(diff_exit)
    monkeypatch.setattr(fleet, "run_launcher", stand_in)
    row = fleet.warm_and_diff(bench_fleet, 2)
    inventory = str(tmp_path / "hosts-2.yml")
    assert [call[:3] for call in stand_in.calls] == [("deploy", "-i", inventory), ("diff", "-i", inventory)]
    assert all(f"ovms_server_image={fleet.DOUBLE}" in call for call in stand_in.calls)
    assert row == {
        "size": 2, "kind": "warm_diff", "warm_s": 20.0, "warm_cpu_s": 8.0, "warm_changed": 0,
        "diff_s": 25.0, "diff_cpu_s": 9.0, "diff_exit": diff_exit,
    }  # fmt: skip


def test_a_failing_diff_is_an_error(bench_fleet, monkeypatch):
    monkeypatch.setattr(fleet, "run_launcher", StandIn(2))
    with pytest.raises(BenchError, match="launcher diff failed"):
        fleet.warm_and_diff(bench_fleet, 2)


def test_summarise_reads_the_drift_rows():
    cold = [
        {"trial": t, "size": size, "seconds": 10.0 * size, "cpu_s": 5.0 + 3.0 * size, "peak_rss_mib": 400.0,
         "tasks_per_host": 80, "changed": 50, "slowest_tasks": []}
        for t in (1, 2) for size in (1, 2)
    ]  # fmt: skip
    drift = [
        {"trial": 1, "size": 2, "kind": "warm_diff", "warm_s": 20.0, "diff_s": 24.0},
        {"trial": 2, "size": 2, "kind": "warm_diff", "warm_s": 20.0, "diff_s": 30.0},
    ]
    ratios, spreads, raw = fleet.summarise([*cold, *drift], (1, 2))
    assert ratios[fleet.DIFF_KEY] == pytest.approx(1.35)  # the median of 1.2 and 1.5
    assert spreads[fleet.DIFF_KEY]["min"] == pytest.approx(1.2)
    assert ratios["controller_cpu_s_per_host"] == pytest.approx(3.0)
    assert ratios["fleet2_over_fleet1"] == pytest.approx(2.0)
    assert raw["warm_diff"]["median_diff_s"] == pytest.approx(27.0)
    assert [r["size"] for r in raw["trials"]] == [1, 2, 1, 2]  # the drift rows are not cold deploys
