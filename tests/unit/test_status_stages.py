"""`launcher status` and cascaded stages: the role's filter carries each client's per-stage stats
(stats.jsonl `stages`, `models`) to the launcher, which shows a cascade's stages by name (requests,
failures, latency) in a table of their own and keeps them whole in `--json`; a one-stage client looks
as it did."""

from __future__ import annotations

import json
from typing import Any

import pytest
from rich.console import Console

from client.stats import Stats
from launcher.runner.render import client_stages_table, render_summary
from launcher.runner.summary import HostSummary, RunSummary
from testbed.plugins import load_plugin

pytestmark = pytest.mark.models

CLIENT = load_plugin("plugins/filter/ovms_client.py")

PRICE_LABEL = (
    ("text-detection", "text-detection"),
    ("text-angle", "text-angle"),
    ("text-recognition", "text-recognition"),
    ("barcode", None),
)


def _line(stages: tuple[tuple[str, str | None], ...], requests: dict[str, list[tuple[float, bool]]]) -> str:
    """The stats line the client writes (client/stats.py) after these requests per stage."""
    now = [100.0]
    stats = Stats(window_s=10.0, clock=lambda: now[0], wall=lambda: 1_700_000_000.0, stages=stages)
    for stage, calls in requests.items():
        for latency, ok in calls:
            stats.stage_request(stage, latency, ok)
    stats.result(0.05)
    now[0] += 1.0
    line = stats.snapshot()
    line["models"] = [model for _, model in stages if model]
    return json.dumps(line)


def _tail(name: str, line: str) -> dict[str, Any]:
    """One entry of status.yml's read (module ovms_client_status, its `stats`)."""
    return {"name": name, "stdout": line}


def _summary(clients: list[dict[str, Any]]) -> RunSummary:
    host = HostSummary("store-1", 5, 0, 0, 0, 0, 0, 0, 1.0, {"roles": ["client"], "clients": clients})
    return RunSummary("status", "successful", 0, [host])


@pytest.fixture
def clients() -> list[dict[str, Any]]:
    cascade = _line(
        PRICE_LABEL,
        {
            "text-detection": [(0.010, True), (0.020, True)],
            "text-angle": [(0.002, True)] * 8 + [(0.5, False)],
            "text-recognition": [(0.004, True)] * 6,
            "barcode": [(0.001, True)],
        },
    )
    single = _line((("person-detection", "person-detection"),), {"person-detection": [(0.012, True)]})
    return CLIENT.ovms_client_stats([_tail("price-label-1", cascade), _tail("person-detection-1", single)])


def test_the_filter_carries_each_stage_and_the_models(clients):
    cascade, single = clients
    assert list(cascade["stages"]) == [name for name, _ in PRICE_LABEL]  # the profile's order
    assert cascade["stages"]["text-angle"] == {
        "requests": 9,
        "failures": 1,
        "latency_p50_ms": 2.0,
        "latency_p95_ms": 2.0,
        "model": "text-angle",
    }
    assert cascade["stages"]["barcode"]["model"] is None
    assert cascade["models"] == ["text-detection", "text-angle", "text-recognition"]
    assert list(single["stages"]) == ["person-detection"] and single["models"] == ["person-detection"]


@pytest.mark.parametrize("line", ["", "not json", json.dumps({"fps": 3.0, "stages": [1], "models": "x"})])
def test_a_line_without_usable_stages_gives_none(line):
    [entry] = CLIENT.ovms_client_stats([_tail("old-1", line)])
    assert (entry["stages"], entry["models"]) == ({}, [])


def test_status_shows_a_cascade_by_stage_and_a_single_model_as_before(clients):
    console = Console(width=200, record=True, color_system=None)
    render_summary(console, _summary(clients), detailed=True)
    text = console.export_text()
    assert "client stages" in text
    rows = {
        cells[3]: cells[1:9]
        for line in _stage_table(text)
        if (cells := [cell.strip() for cell in line.split("│")])[1:3] == ["store-1", "price-label-1"]
    }
    assert rows["text-angle"] == [
        "store-1",
        "price-label-1",
        "text-angle",
        "text-angle",
        "9",
        "1",
        "2.0",
        "2.0",
    ]
    assert rows["text-detection"][4:] == ["2", "0", "15.0", "19.5"]
    assert rows["barcode"][3:6] == ["(in client)", "1", "0"]
    assert list(rows) == [name for name, _ in PRICE_LABEL]
    assert not any("person-detection-1" in line and "│" in line for line in _stage_table(text))


def _stage_table(text: str) -> list[str]:
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == "client stages")
    return lines[start:]


def test_one_stage_clients_add_no_table(clients):
    assert client_stages_table(_summary([clients[1]])) is None
    console = Console(width=200, record=True, color_system=None)
    render_summary(console, _summary([clients[1]]), detailed=True)
    assert "client stages" not in console.export_text()


def test_the_json_summary_keeps_every_stage(clients):
    (host,) = _summary(clients).to_dict()["hosts"]
    cascade = host["clients"][0]
    assert cascade["stages"]["text-angle"]["failures"] == 1
    assert set(cascade["stages"]) == {name for name, _ in PRICE_LABEL}
    assert host["clients"][1]["stages"]["person-detection"]["requests"] == 1
    assert json.loads(json.dumps(host))["clients"] == host["clients"]
