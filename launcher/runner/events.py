"""Runner events -> per host and stage counts, failures and the `ovms_summary` facts.

`RunState.handle` takes the event dicts ansible-runner hands to its `event_handler` (the same JSON
it writes to `artifacts/<ident>/job_events/`), so a recorded run replays exactly like a live one.
It is called from the runner's thread while the UI reads it from the main thread: every access goes
through the state's lock.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from launcher.runner.stages import stage_of

# Events that carry one host's result of one task, and the status each one means.
RESULT_STATUS: dict[str, str] = {
    "runner_on_ok": "ok",
    "runner_on_failed": "failed",
    "runner_on_skipped": "skipped",
    "runner_on_unreachable": "unreachable",
}

STDERR_TAIL_LINES = 5


@dataclass
class StageProgress:
    """Counts of one host in one stage, and what it is doing now."""

    host: str
    stage: str
    ok: int = 0
    changed: int = 0
    failed: int = 0
    skipped: int = 0
    ignored: int = 0
    unreachable: int = 0
    current_task: str = ""


@dataclass(frozen=True)
class TaskResult:
    """One host's result of one task (one line of `--json` output)."""

    host: str
    stage: str
    task: str
    status: str
    changed: bool
    ignored: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": "event",
            "host": self.host,
            "stage": self.stage,
            "task": self.task,
            "status": self.status,
            "changed": self.changed,
            "ignored": self.ignored,
        }


@dataclass(frozen=True)
class HostFailure:
    """The task a host failed at (or became unreachable in) and what Ansible said."""

    host: str
    stage: str
    task: str
    message: str
    stderr_tail: tuple[str, ...] = ()
    unreachable: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "host": self.host,
            "stage": self.stage,
            "task": self.task,
            "message": self.message,
            "stderr_tail": list(self.stderr_tail),
            "unreachable": self.unreachable,
        }


@dataclass
class _HostTimes:
    first: datetime | None = None
    last: datetime | None = None

    def see(self, when: datetime | None) -> None:
        if when is None:
            return
        if self.first is None or when < self.first:
            self.first = when
        if self.last is None or when > self.last:
            self.last = when

    @property
    def seconds(self) -> float | None:
        if self.first is None or self.last is None:
            return None
        return (self.last - self.first).total_seconds()


@dataclass
class Snapshot:
    """A consistent copy of the state for rendering."""

    rows: list[StageProgress]
    play: str
    failures: dict[str, HostFailure]
    summaries: dict[str, dict[str, Any]]
    stats: dict[str, dict[str, int]] | None
    seconds: dict[str, float | None]
    hosts: list[str]
    # the plays started, in order (a play whose hosts all failed ends the playbook: no later one starts)
    plays: list[str] = field(default_factory=list)


@dataclass
class RunState:
    """Everything the launcher learns from the events of one run."""

    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _rows: dict[tuple[str, str], StageProgress] = field(default_factory=dict)
    _hosts: list[str] = field(default_factory=list)
    _times: dict[str, _HostTimes] = field(default_factory=dict)
    _failures: dict[str, HostFailure] = field(default_factory=dict)
    _summaries: dict[str, dict[str, Any]] = field(default_factory=dict)
    _stats: dict[str, dict[str, int]] | None = None
    _play: str = ""
    _plays: list[str] = field(default_factory=list)
    events_seen: int = 0

    def handle(self, event: Mapping[str, Any]) -> TaskResult | None:
        """Take one runner event; return the task result it carries, if any."""
        name = event.get("event")
        data = event.get("event_data") or {}
        if not isinstance(name, str) or not isinstance(data, Mapping):
            return None
        with self._lock:
            self.events_seen += 1
            if name == "playbook_on_play_start":
                self._play = str(data.get("play") or data.get("name") or "")
                self._plays.append(self._play)
                return None
            if name == "playbook_on_stats":
                self._stats = _stats_of(data)
                return None
            host = data.get("host")
            if not isinstance(host, str) or not host:
                return None
            self._see_host(host, _created(event))
            stage = stage_of(data)
            task = str(data.get("task") or "").strip()
            row = self._row(host, stage)
            if name == "runner_on_start":
                row.current_task = task
                return None
            if name == "runner_retry":
                res = data.get("res") or {}
                attempts, retries = res.get("attempts"), res.get("retries")
                row.current_task = f"{task} (retry {attempts}/{retries})" if attempts else task
                return None
            status = RESULT_STATUS.get(name)
            if status is None:
                return None
            return self._record(row, host, stage, task, status, data)

    def _record(
        self, row: StageProgress, host: str, stage: str, task: str, status: str, data: Mapping[str, Any]
    ) -> TaskResult:
        res = data.get("res") if isinstance(data.get("res"), Mapping) else {}
        changed = bool(res.get("changed")) and status == "ok"
        ignored = status == "failed" and bool(data.get("ignore_errors"))
        if status == "ok":
            row.ok += 1
            row.changed += int(changed)
            facts = res.get("ansible_facts")
            if isinstance(facts, Mapping) and isinstance(facts.get("ovms_summary"), Mapping):
                self._summaries[host] = dict(facts["ovms_summary"])
        elif status == "skipped":
            row.skipped += 1
        elif ignored:
            row.ignored += 1
        elif status == "failed":
            row.failed += 1
            self._failures[host] = _failure(host, stage, task, res, unreachable=False)
        else:
            row.unreachable += 1
            self._failures[host] = _failure(host, stage, task, res, unreachable=True)
        row.current_task = task
        return TaskResult(host, stage, task, status, changed, ignored)

    def _row(self, host: str, stage: str) -> StageProgress:
        key = (host, stage)
        row = self._rows.get(key)
        if row is None:
            row = self._rows[key] = StageProgress(host=host, stage=stage)
        return row

    def _see_host(self, host: str, when: datetime | None) -> None:
        if host not in self._times:
            self._hosts.append(host)
            self._times[host] = _HostTimes()
        self._times[host].see(when)

    def snapshot(self) -> Snapshot:
        with self._lock:
            return Snapshot(
                rows=[StageProgress(**vars(row)) for row in self._rows.values()],
                play=self._play,
                failures=dict(self._failures),
                summaries={h: dict(s) for h, s in self._summaries.items()},
                stats={k: dict(v) for k, v in self._stats.items()} if self._stats is not None else None,
                seconds={h: t.seconds for h, t in self._times.items()},
                hosts=list(self._hosts),
                plays=list(self._plays),
            )


def replay(events: Iterable[Mapping[str, Any]]) -> RunState:
    """A state built from recorded events (sorted by their counter, as the runner numbers them)."""
    state = RunState()
    for event in sorted(events, key=lambda e: int(e.get("counter") or 0)):
        state.handle(event)
    return state


_STAT_KEYS = ("ok", "changed", "failures", "dark", "skipped", "ignored", "rescued", "processed")


def _stats_of(data: Mapping[str, Any]) -> dict[str, dict[str, int]]:
    stats: dict[str, dict[str, int]] = {}
    for key in _STAT_KEYS:
        per_host = data.get(key)
        if isinstance(per_host, Mapping):
            stats[key] = {str(h): int(n) for h, n in per_host.items()}
        else:
            stats[key] = {}
    return stats


def _created(event: Mapping[str, Any]) -> datetime | None:
    text = event.get("created")
    if not isinstance(text, str):
        return None
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        return None
    return when.replace(tzinfo=None) if when.tzinfo else when


def _tail(text: object, lines: int = STDERR_TAIL_LINES) -> tuple[str, ...]:
    if not isinstance(text, str) or not text.strip():
        return ()
    return tuple(line.rstrip() for line in text.strip().splitlines()[-lines:])


def _failure(host: str, stage: str, task: str, res: Mapping[str, Any], *, unreachable: bool) -> HostFailure:
    """The message and stderr of a failed result; for a loop, those of its first failed item."""
    source: Mapping[str, Any] = res
    items = res.get("results")
    if isinstance(items, list):
        failed = [i for i in items if isinstance(i, Mapping) and i.get("failed")]
        if failed:
            source = failed[0]
    message = source.get("msg") or res.get("msg") or source.get("reason") or ""
    if not isinstance(message, str):
        message = str(message)
    stderr = source.get("stderr") or source.get("module_stderr") or res.get("module_stderr")
    if not message and not stderr:
        message = "failed (Ansible gave no message)"
    return HostFailure(
        host=host,
        stage=stage,
        task=task,
        message=message.strip(),
        stderr_tail=_tail(stderr),
        unreachable=unreachable,
    )
