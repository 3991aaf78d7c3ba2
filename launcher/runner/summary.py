"""The outcome of a run: one row per host (roles, endpoint, models, containers, counts, failure)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from launcher.runner.events import HostFailure, Snapshot

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_INVALID = 2
EXIT_INTERRUPTED = 130


def _count_of(value: Any) -> int | None:
    """A count from the facts (Jinja may hand it over as text), None when it is none."""
    if isinstance(value, bool):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


@dataclass(frozen=True)
class HostSummary:
    host: str
    ok: int
    changed: int
    failed: int
    unreachable: int
    skipped: int
    ignored: int
    rescued: int
    seconds: float | None
    facts: dict[str, Any] = field(default_factory=dict)
    failure: HostFailure | None = None

    @property
    def status(self) -> str:
        if self.unreachable:
            return "unreachable"
        if self.failed:
            return "failed"
        return "ok"

    @property
    def roles(self) -> list[str]:
        roles = self.facts.get("roles")
        return [str(r) for r in roles] if isinstance(roles, list) else []

    @property
    def endpoint(self) -> str | None:
        value = self.facts.get("endpoint")
        return str(value) if value else None

    @property
    def models(self) -> dict[str, dict[str, str]]:
        models = self.facts.get("models")
        if not isinstance(models, dict):
            return {}
        result: dict[str, dict[str, str]] = {}
        for name, versions in models.items():
            if isinstance(versions, dict):
                result[str(name)] = {str(v): str(s) for v, s in versions.items()}
            else:
                result[str(name)] = {"": str(versions)}
        return result

    @property
    def metrics(self) -> dict[str, dict[str, Any]]:
        """Per model, from OVMS's /metrics: requests, failures, rate per second, mean inference ms."""
        metrics = self.facts.get("model_metrics")
        if not isinstance(metrics, dict):
            return {}
        return {str(name): dict(row) for name, row in metrics.items() if isinstance(row, dict)}

    @property
    def containers(self) -> list[dict[str, Any]]:
        items = self.facts.get("containers")
        return [dict(c) for c in items if isinstance(c, dict)] if isinstance(items, list) else []

    @property
    def clients(self) -> list[dict[str, Any]]:
        items = self.facts.get("clients")
        return [dict(c) for c in items if isinstance(c, dict)] if isinstance(items, list) else []

    @property
    def cameras(self) -> list[dict[str, Any]]:
        """The camera simulators of the host (role ovms_camera): name, state, health, urls."""
        items = self.facts.get("cameras")
        return [dict(c) for c in items if isinstance(c, dict)] if isinstance(items, list) else []

    @property
    def monitoring(self) -> dict[str, Any] | None:
        """The host's Prometheus (role ovms_monitoring, `ovms_monitoring_status_summary`): url, running,
        targets_up and targets (None when unknown), alerts_firing (names); None when it has none."""
        value = self.facts.get("monitoring")
        if not isinstance(value, dict) or not value.get("url"):
            return None
        alerts = value.get("alerts_firing")
        return {
            "url": str(value["url"]),
            "running": value.get("running") is True,
            "targets_up": _count_of(value.get("targets_up")),
            "targets": _count_of(value.get("targets")),
            "alerts_firing": [str(a) for a in alerts] if isinstance(alerts, list) else [],
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "host": self.host,
            "status": self.status,
            "roles": self.roles,
            "endpoint": self.endpoint,
            "models": self.models,
            "metrics": self.metrics,
            "containers": self.containers,
            "clients": self.clients,
            "cameras": self.cameras,
            "monitoring": self.monitoring,
            "ok": self.ok,
            "changed": self.changed,
            "failed": self.failed,
            "unreachable": self.unreachable,
            "skipped": self.skipped,
            "ignored": self.ignored,
            "rescued": self.rescued,
            "seconds": round(self.seconds, 3) if self.seconds is not None else None,
            "failure": self.failure.to_dict() if self.failure else None,
        }


@dataclass(frozen=True)
class RunSummary:
    action: str
    status: str  # successful | failed | canceled | error
    exit_code: int
    hosts: list[HostSummary]
    run_dir: Path | None = None
    runner_rc: int | None = None
    message: str = ""
    output_tail: tuple[str, ...] = ()
    # the plays that started, in order, and the hosts of the final stats (None: the run did not get
    # that far); a roll-out by site (launcher.rollout) tells from them whether a batch was verified
    plays: tuple[str, ...] = ()
    stats_hosts: frozenset[str] | None = None

    @property
    def failed_hosts(self) -> list[HostSummary]:
        return [h for h in self.hosts if h.status != "ok"]

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": "summary",
            "action": self.action,
            "status": self.status,
            "exit_code": self.exit_code,
            "runner_rc": self.runner_rc,
            "message": self.message,
            "output_tail": list(self.output_tail),
            "failed_hosts": [h.host for h in self.failed_hosts],
            "hosts": [h.to_dict() for h in self.hosts],
            "run_dir": str(self.run_dir) if self.run_dir else None,
        }


def _count(rows: list[Any], host: str, attr: str) -> int:
    return sum(getattr(r, attr) for r in rows if r.host == host)


def host_summaries(snapshot: Snapshot) -> list[HostSummary]:
    """Counts from `playbook_on_stats` when the run got that far, else from the events seen."""
    stats = snapshot.stats
    hosts = list(snapshot.hosts)
    if stats is not None:
        for key in ("processed", "ok", "failures", "dark"):
            hosts += [h for h in stats.get(key, {}) if h not in hosts]
    hosts += [h for h in snapshot.summaries if h not in hosts]
    result = []
    for host in hosts:
        if stats is not None:
            counts = {
                "ok": stats["ok"].get(host, 0),
                "changed": stats["changed"].get(host, 0),
                "failed": stats["failures"].get(host, 0),
                "unreachable": stats["dark"].get(host, 0),
                "skipped": stats["skipped"].get(host, 0),
                "ignored": stats["ignored"].get(host, 0),
                "rescued": stats["rescued"].get(host, 0),
            }
        else:
            rows = snapshot.rows
            counts = {
                "ok": _count(rows, host, "ok"),
                "changed": _count(rows, host, "changed"),
                "failed": _count(rows, host, "failed"),
                "unreachable": _count(rows, host, "unreachable"),
                "skipped": _count(rows, host, "skipped"),
                "ignored": _count(rows, host, "ignored"),
                "rescued": 0,
            }
        failing = counts["failed"] or counts["unreachable"]
        result.append(
            HostSummary(
                host=host,
                seconds=snapshot.seconds.get(host),
                facts=snapshot.summaries.get(host, {}),
                failure=snapshot.failures.get(host) if failing else None,
                **counts,
            )
        )
    return result


def summarize(
    action: str,
    snapshot: Snapshot,
    *,
    runner_status: str,
    runner_rc: int | None,
    canceled: bool,
    run_dir: Path | None,
    output_tail: tuple[str, ...] = (),
) -> RunSummary:
    """The run's summary and exit code: 130 interrupted, 1 any host failed or Ansible failed, else 0."""
    hosts = host_summaries(snapshot)
    failed = [h for h in hosts if h.status != "ok"]
    message = ""
    if canceled or runner_status == "canceled":
        status, code, message = "canceled", EXIT_INTERRUPTED, "interrupted: the run was cancelled"
    elif failed:
        status, code = "failed", EXIT_FAILED
        message = "failed on " + ", ".join(f"{h.host} ({h.status})" for h in failed)
    elif runner_status != "successful" or (runner_rc not in (0, None)):
        status, code = "error", EXIT_FAILED
        message = f"ansible-playbook ended with status {runner_status} (rc {runner_rc})"
    else:
        status, code = "successful", EXIT_OK
    return RunSummary(
        action=action,
        status=status,
        exit_code=code,
        hosts=hosts,
        run_dir=run_dir,
        runner_rc=runner_rc,
        message=message,
        output_tail=output_tail if status == "error" else (),
        plays=tuple(snapshot.plays),
        stats_hosts=_stats_hosts(snapshot.stats),
    )


def _stats_hosts(stats: dict[str, dict[str, int]] | None) -> frozenset[str] | None:
    """Every host the final stats name (any count), None without stats."""
    if stats is None:
        return None
    return frozenset(host for per_host in stats.values() for host in per_host)
