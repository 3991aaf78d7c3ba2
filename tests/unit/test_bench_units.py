"""The benchmark plumbing without Docker: statistics, targets, result files, task profiles, the report."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from bench import common, report
from bench.procstats import run_measured
from bench.taskprofile import latest_run, slowest_tasks
from launcher.runner.eventfile import events_dir


def test_median_and_nearest_rank_percentiles():
    values = [5.0, 1.0, 3.0, 2.0, 4.0]
    assert common.median(values) == 3.0
    assert common.percentile(values, 0) == 1.0
    assert common.percentile(values, 50) == 3.0
    assert common.percentile(values, 100) == 5.0
    with pytest.raises(ValueError):
        common.percentile([], 50)


def test_targets_compare_in_their_direction():
    at_least = common.Target("k", ">=", 0.9, "")
    at_most = common.Target("k", "<=", 15.0, "")
    assert at_least.met(0.95) and not at_least.met(0.89)
    assert at_most.met(15.0) and not at_most.met(15.1)
    assert at_least.met(None) is None
    assert {t.key for t in common.TARGETS} >= {
        "mtls_pipelined_over_inprocess", "pipelined_over_sync", "proxy_added_p50_ms",
        "density_mtls_over_inprocess", "warm_redeploy_s", "warm_redeploy_changed",
        "cold_over_compose", "fleet8_over_fleet1",
    }  # fmt: skip


def test_smoke_results_never_land_in_the_committed_folder(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setenv(common.SMOKE_DIR_ENV, str(tmp_path))
    path = common.write_result("x", smoke=True, ratios={"r": 1.5}, raw={"a": [1]}, params={"p": 1})
    assert path == tmp_path / "x.json"
    doc = json.loads(path.read_text())
    assert doc["smoke"] is True and doc["ratios"] == {"r": 1.5} and doc["machine"]["cpus"] >= 1


def test_print_ratios_marks_missed_targets(capsys: pytest.CaptureFixture[str]):
    ok = common.print_ratios("t", {"warm_redeploy_s": 20.0, "other": 1}, common.TARGETS)
    out = capsys.readouterr().out
    assert ok is False
    assert "warm_redeploy_s = 20.0" in out and "MISSED" in out
    assert out.rstrip().splitlines()[-1] == "other = 1"


def _event(counter: int, event: str, created: str, **data: str) -> dict:
    return {"counter": counter, "event": event, "created": created, "event_data": data}


def _write_events(run: Path, rows: list[dict]) -> None:
    """`rows` as the job events of the run `deploy` of the run folder `run`."""
    events = events_dir(run, "deploy")
    events.mkdir(parents=True)
    for row in rows:
        (events / f"{row['counter']}.json").write_text(json.dumps(row))


def test_slowest_tasks_from_runner_events(tmp_path: Path):
    run = tmp_path / "20260101T000000Z-deploy"
    rows = [
        _event(1, "playbook_on_task_start", "2026-01-01T00:00:00", task_uuid="a", task="Fast", role="r1"),
        _event(2, "runner_on_ok", "2026-01-01T00:00:00.500000", task_uuid="a", host="h1"),
        _event(3, "playbook_on_task_start", "2026-01-01T00:00:01", task_uuid="b", task="Slow", role="r2"),
        _event(4, "runner_on_ok", "2026-01-01T00:00:04", task_uuid="b", host="h1"),
        _event(5, "runner_on_failed", "2026-01-01T00:00:05", task_uuid="b", host="h2"),
    ]
    _write_events(run, rows)
    assert latest_run(tmp_path, "deploy") == run
    top = slowest_tasks(run, top=2)
    assert [(t["task"], t["host"], t["seconds"]) for t in top] == [("Slow", "h2", 4.0), ("Slow", "h1", 3.0)]


def test_slowest_tasks_hide_the_benchmarks_folder(tmp_path: Path):
    run = tmp_path / "runs" / "20260101T000000Z-deploy"
    name = f"Mark the data folder as this deployment's, {tmp_path}/launcher/server"
    rows = [
        _event(1, "playbook_on_task_start", "2026-01-01T00:00:00", task_uuid="a", task=name, role="r"),
        _event(2, "runner_on_ok", "2026-01-01T00:00:01", task_uuid="a", host="h1"),
    ]
    _write_events(run, rows)
    [shown] = slowest_tasks(run, scratch=tmp_path)
    assert shown["task"] == "Mark the data folder as this deployment's, <bench folder>/launcher/server"
    assert slowest_tasks(run)[0]["task"] == name


def test_run_measured_reports_exit_output_and_cpu():
    measured = run_measured([sys.executable, "-c", "print(sum(range(10**6)))"])
    assert measured.returncode == 0
    assert measured.stdout.strip() == str(sum(range(10**6)))
    assert measured.cpu_s > 0 and measured.wall_s > 0


def test_report_merges_full_results_and_skips_smoke(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    results = tmp_path / "results"
    results.mkdir()
    deploy = {
        "benchmark": "deploy", "date": "2026-11-22T00:00:00+00:00", "smoke": False,
        "machine": common.machine(),
        "params": {"trials": 1},
        "ratios": {"warm_redeploy_s": 5.5, "warm_redeploy_changed": 0, "cold_over_compose": 2.1},
        "spreads": {"warm_redeploy_s": {"min": 5.0, "median": 5.5, "max": 7.0},
                    "cold_over_compose": {"min": 2.0, "median": 2.1, "max": 2.2}},
        "noisy": ["warm_redeploy_s"],
        "machine_noise": {"before_ms": {"min": 50.0, "median": 51.0, "max": 52.0},
                          "after_ms": {"min": 49.0, "median": 50.0, "max": 55.0}, "drift": 0.98,
                          "spread": 0.12},
        "raw": {"trials": [{"cold_s": 20.0, "warm_s": 9.5, "compose_available_s": 9.5,
                            "compose_first_detection_s": 10.0}],
                "median": {"cold_s": 20.0, "warm_s": 9.5, "compose_available_s": 9.5,
                           "compose_first_detection_s": 10.0, "cold_cpu_s": 5.0, "warm_cpu_s": 3.0,
                           "cold_peak_rss_mib": 300.0, "warm_peak_rss_mib": 290.0},
                "profile_last_trial": {"cold_slowest_tasks": [], "warm_slowest_tasks": []}},
    }  # fmt: skip
    (results / "deploy.json").write_text(json.dumps(deploy))
    (results / "fleet.json").write_text(json.dumps({**deploy, "benchmark": "fleet", "smoke": True}))
    monkeypatch.setattr(report, "NOTES", tmp_path / "absent.md")
    page = report.regenerate(results, tmp_path / "docs" / "benchmarks.md", tmp_path / "docs" / "benchmarks")
    latest = json.loads((results / "latest.json").read_text())
    assert latest["warm_redeploy_s"] == 5.5 and latest["cold_over_compose"] == 2.1
    # every ratio reported has its spread (None where the run measured none)
    assert latest["spreads"]["cold_over_compose"] == {"min": 2.0, "median": 2.1, "max": 2.2}
    assert set(latest["spreads"]) == {"warm_redeploy_s", "warm_redeploy_changed", "cold_over_compose"}
    assert latest["noisy"] == ["warm_redeploy_s"]
    assert latest["targets"]["warm_redeploy_s"]["met"] is True
    assert latest["targets"]["fleet8_over_fleet1"]["met"] is None  # the smoke fleet result is ignored
    text = page.read_text()
    assert "| `cold_over_compose` | 2.1 | 2.0..2.2 | <= 2.5 | yes |" in text
    assert "| `warm_redeploy_s` | 5.5 | 5.0..7.0 **noisy** | <= 6.0 | yes |" in text
    assert "| deploy | 51.0 (50.0..52.0) | 50.0 (49.0..55.0) | 0.98 | 12% |" in text
    assert "Not measured yet: run `bash bench/run.sh fleet`" in text
    assert (tmp_path / "docs" / "benchmarks" / "deploy-single-host.png").stat().st_size > 1000


# --- spreads and the machine's own noise ------------------------------------------------------------


def test_spreads_mark_a_ratio_noisy_past_15_percent():
    from bench.common import noisy_keys, relative_spread, spread

    steady = spread([1.0, 1.05, 1.1])
    jumpy = spread([0.8, 1.0, 1.2])
    assert steady == {"min": 1.0, "median": 1.05, "max": 1.1}
    assert round(relative_spread(steady), 3) == 0.095 and round(relative_spread(jumpy), 3) == 0.4
    assert noisy_keys({"steady": steady, "jumpy": jumpy, "none": None}) == ["jumpy"]
    assert spread([]) is None and spread([None]) is None  # type: ignore[list-item]


def test_machine_noise_compares_the_calibration_loop_before_and_after():
    from bench.common import calibrate, machine_noise

    times = calibrate(repeats=3)
    assert len(times) == 3 and all(t > 0 for t in times)
    noise = machine_noise([50.0, 52.0, 51.0], [60.0, 61.0, 59.0])
    assert noise["before_ms"] == {"min": 50.0, "median": 51.0, "max": 52.0}
    assert noise["drift"] == round(60.0 / 51.0, 3)
    assert noise["spread"] == round((61.0 - 50.0) / 55.5, 3)


def test_a_result_carries_its_spreads_and_noisy_ratios(tmp_path, monkeypatch):
    import json as json_module

    from bench.common import SMOKE_DIR_ENV, write_result

    monkeypatch.setenv(SMOKE_DIR_ENV, str(tmp_path))
    path = write_result(
        "x",
        smoke=True,
        ratios={"a": 1.0, "b": 2.0},
        raw={},
        params={},
        spreads={"a": {"min": 0.5, "median": 1.0, "max": 1.5}},
        noise={"spread": 0.02},
    )
    doc = json_module.loads(path.read_text())
    assert doc["spreads"] == {"a": {"min": 0.5, "median": 1.0, "max": 1.5}, "b": None}
    assert doc["noisy"] == ["a"] and doc["machine_noise"] == {"spread": 0.02}


def test_controller_cpu_per_host_is_the_slope_over_the_sizes():
    from bench.fleet import cpu_slope

    assert cpu_slope([(1, 10.0), (2, 11.0), (4, 13.0), (8, 17.0)]) == pytest.approx(1.0)
    assert cpu_slope([(1, 11.0), (8, 39.0)]) == pytest.approx(4.0)


def test_tasks_per_host_counts_each_result_once(tmp_path):
    from bench.taskprofile import tasks_per_host

    events = tmp_path / "artifacts" / "x" / "job_events"
    events.mkdir(parents=True)
    kinds = ["playbook_on_task_start", "runner_on_ok", "runner_on_skipped", "runner_on_ok", "runner_on_start"]
    hosts = ["", "a", "a", "b", "a"]
    for counter, (kind, host) in enumerate(zip(kinds, hosts, strict=True)):
        record = {"counter": counter, "event": kind, "event_data": {"host": host}}
        (events / f"{counter}.json").write_text(json.dumps(record))
    assert tasks_per_host(tmp_path) == {"a": 2, "b": 1}
