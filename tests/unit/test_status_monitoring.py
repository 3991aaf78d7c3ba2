"""`launcher status` and the deploy's summary show the monitoring endpoint of a host that runs Prometheus
(`monitoring` of its `ovms_summary`: role ovms_monitoring's `ovms_monitoring_status_summary`), and
`--json` carries it per host. Recorded runner events, with the monitoring fact a host reports."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from rich.console import Console
from test_cli_run import FakeRunner, invoke, load_events, outcome
from test_cli_run import runs as runs

from launcher.runner import replay, summarize
from launcher.runner.render import render_summary
from launcher.runner.summary import RunSummary

pytestmark = pytest.mark.observability

UP = {
    "url": "http://127.0.0.1:9090",
    "running": True,
    "targets_up": 5,
    "targets": 5,
    "alerts_firing": [],
}


def with_monitoring(scenario: str, host: str, monitoring: Any) -> list[dict]:
    """The recorded events of `scenario`, `host`'s summary fact carrying `monitoring`."""
    events = copy.deepcopy(load_events(scenario))
    found = 0
    for event in events:
        data = event.get("event_data", {})
        facts = (data.get("res") or {}).get("ansible_facts") or {}
        if data.get("host") == host and "ovms_summary" in facts:
            facts["ovms_summary"]["monitoring"] = monitoring
            found += 1
    assert found == 1, f"{scenario}: no summary fact of {host}"
    return events


def summary_of(scenario: str, host: str, monitoring: Any) -> RunSummary:
    meta = outcome(scenario)
    state = replay(with_monitoring(scenario, host, monitoring))
    return summarize(
        meta.get("action", "deploy"),
        state.snapshot(),
        runner_status=meta["status"],
        runner_rc=meta["rc"],
        canceled=False,
        run_dir=None,
    )


def rendered(summary: RunSummary, *, detailed: bool) -> str:
    console = Console(record=True, width=200)
    render_summary(console, summary, detailed=detailed)
    return console.export_text()


@pytest.mark.parametrize(
    ("monitoring", "line"),
    [
        (UP, "monitoring: http://127.0.0.1:9090 (5/5 targets up; alerts: none) on localhost"),
        (
            {**UP, "targets_up": 3, "alerts_firing": ["OvmsClientDown", "OvmsServerDown"]},
            "monitoring: http://127.0.0.1:9090 (3/5 targets up; alerts: OvmsClientDown, OvmsServerDown)",
        ),
        ({**UP, "running": False}, "monitoring: http://127.0.0.1:9090 (not running) on localhost"),
        # Jinja may hand the counts over as text
        ({**UP, "targets_up": "4", "targets": "5"}, "(4/5 targets up; alerts: none)"),
    ],
)
def test_status_shows_the_monitoring_line(monitoring, line):
    summary = summary_of("status-localhost", "localhost", monitoring)
    assert line in rendered(summary, detailed=True)


@pytest.mark.parametrize("monitoring", [None, {}, "", {"running": True}])
def test_no_monitoring_line_without_an_endpoint(monitoring):
    """No Prometheus on the host: status.yml's `default(None)`, or nothing usable."""
    summary = summary_of("status-localhost", "localhost", monitoring)
    assert "monitoring:" not in rendered(summary, detailed=True)
    assert summary.hosts[0].to_dict()["monitoring"] is None


def test_the_deploy_summary_shows_it_for_the_host_that_runs_prometheus():
    summary = summary_of("success", "host-b", {**UP, "targets_up": 4})
    text = rendered(summary, detailed=False)
    assert "monitoring: http://127.0.0.1:9090 (4/5 targets up; alerts: none) on host-b" in text
    assert text.count("monitoring:") == 1


def test_json_carries_the_monitoring_per_host(runs, monkeypatch):
    import ansible_runner

    meta = outcome("status-localhost")
    events = with_monitoring("status-localhost", "localhost", {**UP, "alerts_firing": ["OvmsDiskFull"]})
    monkeypatch.setattr(ansible_runner, "run_async", FakeRunner(events, meta["status"], meta["rc"]))
    result = invoke("status", "--json")
    assert result.exit_code == 0, result.output
    [host] = json.loads(result.output.splitlines()[-1])["hosts"]
    assert host["monitoring"] == {**UP, "alerts_firing": ["OvmsDiskFull"]}
    shown = invoke("status")
    assert "monitoring: http://127.0.0.1:9090 (5/5 targets up; alerts: OvmsDiskFull) on localhost" in (
        " ".join(shown.output.split())
    )
