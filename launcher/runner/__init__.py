"""The launcher's Ansible side: ansible-runner wrapper, event handling, progress and summary rendering.

- `RunRequest` + `execute(request, json_output=..., detailed=...) -> RunSummary` run a playbook with
  live progress (or JSON lines) and a final summary; `RunSummary.exit_code` is 0/1/130.
- `RunState` / `replay(events)` turn runner events into per host and stage counts, failures and the
  `ovms_summary` facts; `stage_of(event_data)` names an event's stage.
- `parse_extra_vars([...])` merges `-e key=value`, `-e @file.yml` and `-e '{json}'`.
"""

from __future__ import annotations

from launcher.runner.events import HostFailure, RunState, TaskResult, replay
from launcher.runner.execute import RunOutcome, RunRequest, run_playbook, runner_envvars, runner_kwargs
from launcher.runner.extravars import parse_extra_vars
from launcher.runner.rundir import new_run_dir, runs_root
from launcher.runner.session import execute
from launcher.runner.stages import stage_of
from launcher.runner.summary import HostSummary, RunSummary, summarize

__all__ = [
    "HostFailure",
    "HostSummary",
    "RunOutcome",
    "RunRequest",
    "RunState",
    "RunSummary",
    "TaskResult",
    "execute",
    "new_run_dir",
    "parse_extra_vars",
    "replay",
    "run_playbook",
    "runner_envvars",
    "runner_kwargs",
    "runs_root",
    "stage_of",
    "summarize",
]
