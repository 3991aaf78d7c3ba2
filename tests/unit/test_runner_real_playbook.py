"""A real ansible-runner run of tests/fixtures/playbooks/tiny.yml against localhost (local connection):
proves PATH and ANSIBLE_CONFIG wiring, the artifacts folder, event handling and summary facts."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import threading
from pathlib import Path

import pytest
from rich.console import Console

from launcher.runner import RunRequest, RunState, execute, run_playbook, summarize
from testbed.paths import PROJECT_ROOT

PLAYBOOKS = Path(__file__).resolve().parents[1] / "fixtures" / "playbooks"

pytestmark = pytest.mark.slow


@pytest.fixture
def bare_path(monkeypatch):
    """A PATH without the venv: ansible-playbook is found only through the runner's PATH wiring."""
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    assert shutil.which("ansible-playbook") is None or "/.venv/" not in shutil.which("ansible-playbook")


def _request(tmp_path: Path, **extravars: str) -> RunRequest:
    return RunRequest(
        action="deploy",
        playbook=PLAYBOOKS / "tiny.yml",
        inventories=(PLAYBOOKS / "inventory" / "hosts.yml",),
        extravars=extravars,
        runs_root=tmp_path / "runs",
    )


def test_real_run_succeeds_and_keeps_artifacts(tmp_path, bare_path):
    console = Console(file=(tmp_path / "out.txt").open("w"), width=200)
    summary = execute(_request(tmp_path), console=console)
    console.file.close()
    assert summary.exit_code == 0, summary.message
    run_dir = summary.run_dir
    assert run_dir is not None and run_dir.parent == tmp_path / "runs" and run_dir.name.endswith("-deploy")
    envvars = (run_dir / "env" / "envvars").read_text()
    assert str(PROJECT_ROOT / "ansible.cfg") in envvars
    events = sorted((run_dir / "artifacts" / "deploy" / "job_events").glob("*.json"))
    assert events, "job events must be kept"
    # the launcher writes them (launcher.runner.eventfile): each once, private, named by its content
    assert not list(events[0].parent.glob("*.tmp")) and not list(events[0].parent.glob("*-partial.json"))
    for path in events:
        event = json.loads(path.read_text())
        assert path.name == f"{event['counter']}-{event['uuid']}.json"
        assert path.stat().st_mode & 0o777 == 0o600
    counters = sorted(json.loads(p.read_text())["counter"] for p in events)
    assert counters == list(range(1, len(counters) + 1))
    names = {json.loads(p.read_text())["event"] for p in events}
    assert {"runner_on_ok", "playbook_on_stats", "runner_on_start"} <= names
    hosts = {h.host: h for h in summary.hosts}
    assert hosts["host-a"].roles == ["server", "client"]
    assert hosts["host-a"].models == {"person-detection": {"1": "AVAILABLE"}}
    assert hosts["host-b"].clients[0]["frames"] == 740
    assert hosts["host-a"].changed == 3 and hosts["host-b"].changed == 1
    out = (tmp_path / "out.txt").read_text()
    assert "person-detection v1 AVAILABLE" in out and f"run artifacts: {run_dir}" in out


def test_real_run_failure_names_the_task(tmp_path, bare_path):
    summary = execute(_request(tmp_path, tiny_fail_host="host-b"), json_output=True)
    assert summary.exit_code == 1
    [failed] = summary.failed_hosts
    assert failed.host == "host-b" and failed.failure is not None
    assert failed.failure.task == "Start the client container"
    assert failed.failure.stderr_tail == ("client start failed: server unreachable",)


def _processes_with(argv: list[str]) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            raw = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if raw.split(b"\0")[: len(argv)] == [a.encode() for a in argv]:
            found.append(int(entry.name))
    return found


def test_real_run_ctrl_c_cancels_and_kills_ansible(tmp_path, bare_path):
    marker = f"{3000 + secrets.randbelow(600)}.{secrets.randbelow(10**6):06d}"  # unique sleep argument
    request = RunRequest(
        action="deploy",
        playbook=PLAYBOOKS / "sleep.yml",
        inventories=(PLAYBOOKS / "inventory" / "hosts.yml",),
        extravars={"tiny_sleep": marker},
        runs_root=tmp_path / "runs",
    )
    seen: list[str] = []
    state = RunState()

    def on_event(event: dict) -> None:
        state.handle(event)
        seen.append(event["event"])
        if event["event"] == "runner_on_start":
            os.kill(os.getpid(), signal.SIGINT)  # Ctrl+C once the long task has started

    outcome = run_playbook(request, on_event)
    assert outcome.canceled and outcome.status == "canceled"
    summary = summarize(
        "deploy",
        state.snapshot(),
        runner_status=outcome.status,
        runner_rc=outcome.rc,
        canceled=True,
        run_dir=None,
    )
    assert summary.exit_code == 130
    assert "runner_on_ok" not in seen  # the sleep never finished
    leftovers = _processes_with(["sleep", marker])
    for _ in range(100):  # killed processes may take a moment to be reaped
        if not leftovers:
            break
        threading.Event().wait(0.05)
        leftovers = _processes_with(["sleep", marker])
    assert leftovers == [], "the cancelled task's process must be killed with ansible-playbook"
