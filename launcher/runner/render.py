"""Rich views of a run: live progress per host and stage, the final summary, container and client rows."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

from launcher.runner.events import RunState
from launcher.runner.stages import stage_rank
from launcher.runner.summary import HostSummary, RunSummary

_STATE_STYLE = {
    "AVAILABLE": "green",
    "LOADING": "yellow",
    "START": "yellow",
    "END": "red",
    "UNLOADING": "red",
}


class ProgressView:
    """One line per host and stage: ok / changed / failed / skipped counts and the current task."""

    def __init__(self, state: RunState, action: str) -> None:
        self.state = state
        self.action = action

    def __rich__(self) -> RenderableType:
        snap = self.state.snapshot()
        order = {host: i for i, host in enumerate(snap.hosts)}
        rows = sorted(snap.rows, key=lambda r: (order.get(r.host, len(order)), stage_rank(r.stage)))
        table = Table(title=f"{self.action}: {snap.play or 'starting'}", title_justify="left", expand=False)
        for name, justify in (
            ("host", "left"),
            ("stage", "left"),
            ("ok", "right"),
            ("changed", "right"),
            ("failed", "right"),
            ("skipped", "right"),
            ("task", "left"),
        ):
            table.add_column(name, justify=justify, no_wrap=name != "task")  # type: ignore[arg-type]
        for row in rows:
            failed = row.failed + row.unreachable
            table.add_row(
                row.host,
                row.stage,
                str(row.ok),
                Text(str(row.changed), style="yellow" if row.changed else ""),
                Text(str(failed), style="bold red" if failed else ""),
                str(row.skipped),
                row.current_task,
            )
        return table


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def _models_cell(host: HostSummary) -> Text:
    text = Text()
    for name, versions in host.models.items():
        for version, state in versions.items():
            if text:
                text.append("\n")
            label = f"{name} v{version}" if version else name
            text.append(f"{label} ")
            text.append(state, style=_STATE_STYLE.get(state.upper(), ""))
    return text if text else Text("-")


def _containers_cell(host: HostSummary) -> Text:
    text = Text()
    for container in host.containers:
        if text:
            text.append("\n")
        state = str(container.get("state") or "?")
        text.append(f"{container.get('name', '?')} ")
        text.append(state, style="green" if state == "running" else "red")
        if container.get("health"):
            health = str(container["health"])
            text.append(f" ({health})", style="green" if health == "healthy" else "yellow")
    return text if text else Text("-")


def summary_table(summary: RunSummary) -> Table:
    table = Table(title=f"{summary.action} summary", title_justify="left")
    for name in ("host", "status", "roles", "endpoint", "models", "containers", "changed", "failed", "time"):
        table.add_column(name, justify="right" if name in ("changed", "failed", "time") else "left")
    for host in summary.hosts:
        style = "green" if host.status == "ok" else "bold red"
        table.add_row(
            host.host,
            Text(host.status, style=style),
            ", ".join(host.roles) or "-",
            host.endpoint or "-",
            _models_cell(host),
            _containers_cell(host),
            str(host.changed),
            Text(str(host.failed + host.unreachable), style="bold red" if host.status != "ok" else ""),
            _duration(host.seconds),
        )
    return table


def _parse_time(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    text = re.sub(r"(\.\d{6})\d+", r"\1", value.strip()).replace("Z", "+00:00")
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def uptime(started_at: object, now: datetime | None = None) -> str:
    when = _parse_time(started_at)
    if when is None:
        return "-"
    return _duration(((now or datetime.now(UTC)) - when).total_seconds())


def _uptime_cell(container: dict[str, Any], now: datetime | None) -> str:
    """From `started_at`; else Docker's own status text such as "Up 4 minutes"."""
    shown = uptime(container.get("started_at"), now)
    if shown == "-" and isinstance(container.get("status"), str):
        return str(container["status"])
    return shown


def _number(value: Any, fmt: str) -> str:
    if value is None or isinstance(value, bool):
        return "-"
    try:
        return format(float(value), fmt) if fmt else str(int(value))
    except (TypeError, ValueError):
        return str(value)


def containers_table(summary: RunSummary, now: datetime | None = None) -> Table | None:
    rows = [(h.host, c) for h in summary.hosts for c in h.containers]
    if not rows:
        return None
    table = Table(title="containers", title_justify="left")
    for name in ("host", "container", "state", "health", "image", "uptime"):
        table.add_column(name)
    for host, c in rows:
        state = str(c.get("state") or "-")
        table.add_row(
            host,
            str(c.get("name") or "-"),
            Text(state, style="green" if state == "running" else "red"),
            str(c.get("health") or "-"),
            str(c.get("image") or "-"),
            _uptime_cell(c, now) if state == "running" else "-",
        )
    return table


def server_metrics_table(summary: RunSummary) -> Table | None:
    """Per model, what OVMS's /metrics say: inferences per second over the status interval, failed
    inferences (in the interval / since the start), mean inference time."""
    rows = [(h.host, name, m) for h in summary.hosts for name, m in sorted(h.metrics.items())]
    if not rows:
        return None
    table = Table(title="server (OVMS metrics)", title_justify="left")
    table.add_column("host")
    table.add_column("model")
    for name in ("req/s", "failed", "failed total", "inference ms", "requests"):
        table.add_column(name, justify="right")
    for host, model, m in rows:
        failed = m.get("failures_in_interval")
        table.add_row(
            host,
            model,
            _number(m.get("rate"), ".1f"),
            Text(_number(failed, ""), style="bold red" if failed else ""),
            _number(m.get("failures"), ""),
            _number(m.get("inference_ms"), ".1f"),
            _number(m.get("requests"), ""),
        )
    return table


def clients_table(summary: RunSummary) -> Table | None:
    rows = [(h.host, c) for h in summary.hosts for c in h.clients]
    if not rows:
        return None
    table = Table(title="clients", title_justify="left")
    table.add_column("host")
    table.add_column("client")
    for name in ("fps", "p95 ms", "dropped", "frames", "stalls", "drops", "reconnects"):
        table.add_column(name, justify="right")
    table.add_column("sources")
    for host, c in rows:
        table.add_row(
            host,
            str(c.get("name") or "-"),
            _number(c.get("fps"), ".1f"),
            _number(c.get("latency_p95_ms"), ".1f"),
            _number(c.get("dropped"), ""),
            _number(c.get("frames"), ""),
            _number(c.get("stalls"), ""),
            _number(c.get("drops"), ""),
            _number(c.get("reconnects"), ""),
            _sources_cell(c.get("sources")),
        )
    return table


def _stage_rows(client: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(stage name, its stats) of a client whose profile has more than one stage; a one-stage profile
    is the clients table's row itself, so it has none here."""
    stages = client.get("stages")
    if not isinstance(stages, dict) or len(stages) < 2:
        return []
    return [(str(name), row) for name, row in stages.items() if isinstance(row, dict)]


def client_stages_table(summary: RunSummary) -> Table | None:
    """Per stage of each cascade client (stats.jsonl `stages`): its model (none: run in the client),
    requests and failed requests since the start, latency percentiles over the stats window."""
    rows = [(h.host, c, name, row) for h in summary.hosts for c in h.clients for name, row in _stage_rows(c)]
    if not rows:
        return None
    table = Table(title="client stages", title_justify="left")
    for name in ("host", "client", "stage", "model"):
        table.add_column(name)
    for name in ("requests", "failed", "p50 ms", "p95 ms"):
        table.add_column(name, justify="right")
    for host, client, stage, row in rows:
        failed = row.get("failures")
        table.add_row(
            host,
            str(client.get("name") or "-"),
            stage,
            str(row.get("model") or "(in client)"),
            _number(row.get("requests"), ""),
            Text(_number(failed, ""), style="bold red" if failed else ""),
            _number(row.get("latency_p50_ms"), ".1f"),
            _number(row.get("latency_p95_ms"), ".1f"),
        )
    return table


def _sources_cell(sources: Any) -> Text:
    """One line per stream: `0 reading 0.1s rtsp://camera-1:8554/aisle3`, red unless it is reading."""
    text = Text()
    for source in sources if isinstance(sources, list) else []:
        if not isinstance(source, dict):
            continue
        state = str(source.get("state") or "?")
        age = source.get("last_frame_age_s")
        if text:
            text.append("\n")
        text.append(f"{source.get('stream', '?')} ")
        style = {"reading": "green", "ended": "green", "connecting": "yellow"}.get(state, "bold red")
        text.append(state, style=style)
        text.append(f" {_number(age, '.1f')}s" if age is not None else " no frame yet")
        text.append(f" {source.get('input') or '-'}", style="dim")
        if source.get("error"):
            text.append(f" ({source['error']})", style="red")
    return text if text else Text("-")


def cameras_table(summary: RunSummary) -> Table | None:
    rows = [(h.host, c) for h in summary.hosts for c in h.cameras]
    if not rows:
        return None
    table = Table(title="cameras", title_justify="left")
    for name in ("host", "camera", "state", "health", "streams"):
        table.add_column(name)
    for host, c in rows:
        state = str(c.get("state") or "-")
        urls = c.get("urls")
        table.add_row(
            host,
            str(c.get("name") or "-"),
            Text(state, style="green" if state == "running" else "red"),
            str(c.get("health") or "-"),
            "\n".join(str(u) for u in urls) if isinstance(urls, list) and urls else "-",
        )
    return table


def monitoring_line(host: str, monitoring: dict[str, Any]) -> Text:
    """`monitoring: URL (N/M targets up; alerts: none) on HOST`: green when every target is up and no
    alert fires, yellow when a target is down, red when an alert fires or Prometheus is not running."""
    line = Text("monitoring: ", style="bold")
    line.append(monitoring["url"])
    if not monitoring["running"]:
        line.append(" (not running)", style="bold red")
    else:
        up, total = monitoring["targets_up"], monitoring["targets"]
        known = up is not None and total is not None
        line.append(" (")
        counts = f"{_number(up, '')}/{_number(total, '')} targets up"
        line.append(counts, style="green" if known and up == total else "yellow")
        alerts = monitoring["alerts_firing"]
        line.append("; alerts: ")
        line.append(", ".join(alerts) if alerts else "none", style="bold red" if alerts else "green")
        line.append(")")
    line.append(f" on {host}", style="dim")
    return line


def monitoring_view(summary: RunSummary) -> RenderableType | None:
    """One monitoring line per host that runs Prometheus (deploy and status)."""
    lines = [monitoring_line(h.host, h.monitoring) for h in summary.hosts if h.monitoring is not None]
    return Group(*lines) if lines else None


def failures_view(summary: RunSummary) -> RenderableType | None:
    parts: list[RenderableType] = []
    for host in summary.failed_hosts:
        failure = host.failure
        line = Text(f"✗ {host.host} ", style="bold red")
        if failure is None:
            line.append(f"{host.status} (no failing task reported)")
        else:
            what = "unreachable" if failure.unreachable else "failed"
            line.append(f"{what} at [{failure.stage}] task ", style="red")
            line.append(repr(failure.task) if failure.task else "(unnamed)", style="bold")
            line.append(f": {failure.message}")
        parts.append(line)
        if failure is not None:
            parts.extend(Text(f"    stderr: {err}", style="dim") for err in failure.stderr_tail)
    if summary.status == "error":
        parts.append(Text(summary.message, style="bold red"))
        parts.extend(Text(f"    {line}", style="dim") for line in summary.output_tail)
    return Group(*parts) if parts else None


def render_summary(console: Console, summary: RunSummary, *, detailed: bool = False) -> None:
    """The final table; with `detailed` (status) also the container and client rows; the monitoring
    endpoints of the hosts that run Prometheus."""
    if summary.hosts:
        console.print(summary_table(summary))
    else:
        console.print("[yellow]no host reported any result[/]")
    if detailed:
        tables = (
            containers_table(summary),
            server_metrics_table(summary),
            clients_table(summary),
            client_stages_table(summary),
            cameras_table(summary),
        )
        for table in tables:
            if table is not None:
                console.print(table)
    monitoring = monitoring_view(summary)
    if monitoring is not None:
        console.print(monitoring)
    failures = failures_view(summary)
    if failures is not None:
        console.print(failures)
    if summary.status == "canceled":
        console.print("[yellow]interrupted: the run was cancelled[/]")
    elif summary.status == "successful":
        console.print(f"[green]{summary.action} succeeded[/] on {len(summary.hosts)} host(s)")
    if summary.run_dir is not None:
        console.print(f"run artifacts: {summary.run_dir}", highlight=False, soft_wrap=True)
