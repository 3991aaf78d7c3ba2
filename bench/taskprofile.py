"""Where a deploy's time went: the slowest tasks of one run, read from ansible-runner's job events.

A benchmark runs the launcher with its own `OVMS_LAUNCHER_RUNS` folder and reads the run back, so a
missed target comes with the tasks that cost the time (the issue's "profile, then fix").
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

_END_EVENTS = {"runner_on_ok", "runner_on_skipped", "runner_on_failed", "runner_on_unreachable"}


def latest_run(runs_root: Path, action: str) -> Path | None:
    runs = sorted(p for p in runs_root.glob(f"*-{action}*") if p.is_dir())
    return runs[-1] if runs else None


def run_events(run_dir: Path) -> list[dict[str, Any]]:
    """The ansible-runner events of a launcher run folder, in order (unreadable ones skipped)."""
    events = []
    for path in run_dir.glob("artifacts/*/job_events/*.json"):
        try:
            events.append(json.loads(path.read_text()))
        except (OSError, ValueError):
            continue
    return sorted(events, key=lambda e: e.get("counter", 0))


SCRATCH = "<bench folder>"


def slowest_tasks(run_dir: Path, top: int = 8, scratch: Path | None = None) -> list[dict[str, Any]]:
    """The `top` task results with the longest start-to-result time: role, task, host, seconds. A
    task name that shows the benchmark's own temporary folder `scratch` shows SCRATCH instead (the
    results are committed: no path of the machine that ran them)."""
    events = run_events(run_dir)
    starts: dict[str, tuple[dt.datetime, str, str]] = {}
    rows: list[dict[str, Any]] = []
    for event in events:
        data = event.get("event_data") or {}
        try:
            when = dt.datetime.fromisoformat(event["created"])
        except (KeyError, ValueError):
            continue
        if event.get("event") == "playbook_on_task_start":
            starts[data.get("task_uuid", "")] = (when, data.get("task") or "", data.get("role") or "")
        elif event.get("event") in _END_EVENTS and data.get("task_uuid") in starts:
            began, task, role = starts[data["task_uuid"]]
            if scratch is not None:
                task = task.replace(str(scratch), SCRATCH)
            rows.append({"seconds": round((when - began).total_seconds(), 2), "role": role, "task": task,
                         "host": data.get("host", "")})  # fmt: skip
    rows.sort(key=lambda r: r["seconds"], reverse=True)
    return rows[:top]


def tasks_per_host(run_dir: Path) -> dict[str, int]:
    """How many task results each host had in a run (ok, changed, skipped or failed): the controller
    pays a round trip for nearly each of them, so this is the count a deploy's speed follows."""
    counts: dict[str, int] = {}
    for event in run_events(run_dir):
        if event.get("event") in _END_EVENTS:
            host = (event.get("event_data") or {}).get("host", "")
            counts[host] = counts.get(host, 0) + 1
    return counts
