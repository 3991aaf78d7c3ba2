"""One launcher run end to end: execute the playbook, show progress (rich or JSON lines), summarize."""

from __future__ import annotations

import json
import queue
import threading
from typing import Any

import click
from rich.console import Console
from rich.live import Live
from rich.text import Text

from launcher.console import make_console
from launcher.runner.events import RunState
from launcher.runner.execute import RunOutcome, RunRequest, run_playbook
from launcher.runner.render import ProgressView, render_summary
from launcher.runner.summary import RunSummary, summarize


def json_line(obj: dict[str, Any]) -> str:
    """One line of `--json` output (sorted keys; paths and other objects as text)."""
    return json.dumps(obj, sort_keys=True, default=str)


def outcome_summary(action: str, state: RunState, outcome: RunOutcome) -> RunSummary:
    """The summary of a finished run: what its events said, and how ansible-runner ended."""
    return summarize(
        action,
        state.snapshot(),
        runner_status=outcome.status,
        runner_rc=outcome.rc,
        canceled=outcome.canceled,
        run_dir=outcome.run_dir,
        output_tail=outcome.output_tail,
    )


def execute(
    request: RunRequest, *, json_output: bool = False, detailed: bool = False, console: Console | None = None
) -> RunSummary:
    """Run `request`, render it, and return the summary (its `exit_code` is the command's)."""
    console = console or make_console()
    err = make_console(stderr=True)
    state = RunState()

    def interrupted() -> None:
        err.print("[yellow]interrupt: cancelling the run (ansible-playbook is being stopped)…[/]")

    if json_output:
        lock = threading.Lock()

        def on_event(event: dict[str, Any]) -> None:
            result = state.handle(event)
            if result is not None:
                with lock:
                    click.echo(json_line(result.to_dict()))

        outcome = run_playbook(request, on_event, on_interrupt=interrupted)
    else:
        view = ProgressView(state, request.action)
        pending: queue.SimpleQueue[str] = queue.SimpleQueue()

        def on_event(event: dict[str, Any]) -> None:
            state.handle(event)
            if request.verbosity and event.get("stdout"):
                pending.put(str(event["stdout"]))

        with Live(view, console=console, auto_refresh=False, transient=False) as live:

            def tick() -> None:
                # with --verbose, Ansible's own output scrolls above the live table
                while not pending.empty():
                    live.console.print(Text.from_ansi(pending.get().strip("\r\n")), highlight=False)
                live.refresh()

            outcome = run_playbook(request, on_event, tick=tick, on_interrupt=interrupted)
            tick()
        if not console.is_terminal:
            console.line()  # a non-terminal Live leaves its last line open
    summary = outcome_summary(request.action, state, outcome)
    if json_output:
        click.echo(json_line(summary.to_dict()))
    else:
        render_summary(console, summary, detailed=detailed)
    return summary
