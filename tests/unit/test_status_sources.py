"""`launcher status` shows what the cameras and the clients' sources report: the cameras table, the
sources column (state, seconds since the last frame, why not reading) and the counters."""

from __future__ import annotations

import pytest
from rich.console import Console

from launcher.runner.render import render_summary
from launcher.runner.summary import HostSummary, RunSummary

pytestmark = pytest.mark.sources


def _summary() -> RunSummary:
    facts = {
        "roles": ["camera", "client"],
        "cameras": [
            {
                "name": "ovms-camera",
                "state": "running",
                "health": "healthy",
                "urls": ["rtsp://10.0.0.5:8554/sample"],
            }
        ],
        "clients": [
            {
                "name": "person-detection-1",
                "fps": 15.0,
                "latency_p95_ms": 12.0,
                "dropped": 0,
                "frames": 900,
                "stalls": 1,
                "drops": 2,
                "reconnects": 3,
                "sources": [
                    {
                        "stream": 0,
                        "state": "reading",
                        "last_frame_age_s": 0.07,
                        "input": "rtsp://op:***@ovms-camera:8554/sample",
                        "error": None,
                    },
                    {
                        "stream": 1,
                        "state": "reconnecting",
                        "last_frame_age_s": 31.5,
                        "input": "rtsp://cam-2:554/a",
                        "error": "connection refused by cam-2:554",
                    },
                ],
            }
        ],
    }
    host = HostSummary("store-1", 10, 0, 0, 0, 0, 0, 0, 1.0, facts)
    return RunSummary("status", "successful", 0, [host])


def test_status_shows_cameras_and_each_source():
    console = Console(width=240, record=True, color_system=None)
    render_summary(console, _summary(), detailed=True)
    text = console.export_text()
    assert "cameras" in text and "rtsp://10.0.0.5:8554/sample" in text and "healthy" in text
    assert "0 reading 0.1s rtsp://op:***@ovms-camera:8554/sample" in text
    assert "1 reconnecting 31.5s rtsp://cam-2:554/a (connection refused by cam-2:554)" in text
    row = next(line for line in text.splitlines() if "person-detection-1" in line)
    cells = [cell.strip() for cell in row.split("│")]
    assert cells[7:10] == ["1", "2", "3"], row  # stalls, drops, reconnects


def test_the_json_summary_keeps_the_cameras_and_sources():
    (host,) = _summary().to_dict()["hosts"]
    assert host["cameras"][0]["name"] == "ovms-camera"
    assert host["clients"][0]["sources"][1]["state"] == "reconnecting"
