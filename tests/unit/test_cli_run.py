"""`launcher deploy | destroy | status` rendering recorded runner events, exit codes 0/1/2/130, --json.

ansible-runner is replaced by a fake `run_async` that feeds the recorded events of
tests/fixtures/events/ to the launcher's event handler from a thread, like the real runner does.
"""

from __future__ import annotations

import importlib
import json
import os
import signal
import threading
from pathlib import Path
from types import SimpleNamespace

import ansible_runner
import pytest
from click.testing import CliRunner

from launcher.cli import main
from launcher.runner.eventfile import events_dir
from testbed.paths import PROJECT_ROOT

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
deploy_module = importlib.import_module("launcher.commands.deploy")  # the package re-exports `deploy`
LOCALHOST = str(PROJECT_ROOT / "inventories" / "localhost")


def load_events(scenario: str) -> list[dict]:
    lines = (FIXTURES / "events" / scenario / "events.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def outcome(scenario: str) -> dict:
    return json.loads((FIXTURES / "events" / scenario / "outcome.json").read_text(encoding="utf-8"))


class FakeRunner:
    """Stands in for `ansible_runner.run_async`; records its kwargs."""

    def __init__(self, events: list[dict], status: str, rc: int, *, interrupt_after: int | None = None):
        self.events = events
        self.status = status
        self.rc = rc
        self.interrupt_after = interrupt_after
        self.calls: list[dict] = []
        self.cancel_seen = False
        self.kept: list[bool] = []

    def __call__(self, **kwargs):
        self.calls.append(kwargs)
        runner = SimpleNamespace(status="starting", rc=None, canceled=False)
        ident = kwargs["ident"]

        def work() -> None:
            out = Path(kwargs["private_data_dir"]) / "artifacts" / ident
            out.mkdir(parents=True)
            (out / "stdout").write_text("PLAY [x]\nERROR! the playbook could not be parsed\n")
            for index, event in enumerate(self.events):
                if self.interrupt_after is not None and index == self.interrupt_after:
                    os.kill(os.getpid(), signal.SIGINT)  # as Ctrl+C in the terminal would
                    for _ in range(500):  # the runner polls cancel_callback while ansible-playbook runs
                        if kwargs["cancel_callback"]():
                            self.cancel_seen = True
                            break
                        threading.Event().wait(0.01)
                    runner.canceled, runner.status, runner.rc = True, "canceled", 254
                    return
                self.kept.append(kwargs["event_handler"](event))
            runner.status, runner.rc = self.status, self.rc

        thread = threading.Thread(target=work)
        thread.start()
        return thread, runner


@pytest.fixture
def runs(tmp_path, monkeypatch):
    monkeypatch.setenv("OVMS_LAUNCHER_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("COLUMNS", "220")
    return tmp_path / "runs"


def install(monkeypatch, scenario: str | None = None, **kw) -> FakeRunner:
    if scenario is None:
        fake = FakeRunner([], kw.pop("status", "failed"), kw.pop("rc", 4), **kw)
    else:
        meta = outcome(scenario)
        fake = FakeRunner(load_events(scenario), meta["status"], meta["rc"], **kw)
    monkeypatch.setattr(ansible_runner, "run_async", fake)
    return fake


def invoke(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_deploy_success_renders_progress_and_summary(runs, monkeypatch):
    fake = install(monkeypatch, "success")
    result = invoke("deploy", "-i", LOCALHOST)
    assert result.exit_code == 0, result.output
    out = result.output
    # live progress: one line per host and stage
    for stage in ("prechecks", "models", "server", "client", "verify", "summary"):
        assert f"│ host-a │ {stage}" in out
    # summary table: roles, endpoint, model states, containers, changed
    assert "server, client" in out and "ovms-server:9000" in out
    assert "person-detection v1 AVAILABLE" in out
    assert "ovms-server running (healthy)" in out
    assert "deploy succeeded on 2 host(s)" in out
    [call] = fake.calls
    run_dir = Path(call["private_data_dir"])
    assert run_dir.parent == runs and run_dir.name.endswith("-deploy")
    assert f"run artifacts: {run_dir}" in out
    assert call["playbook"] == str(PROJECT_ROOT / "playbooks" / "deploy.yml")
    assert call["inventory"] == [LOCALHOST]
    # every event is kept in the artifacts, written by the launcher (the runner is told not to)
    kept = sorted(p.name for p in events_dir(run_dir, "deploy").iterdir())
    assert kept == sorted(f"{e['counter']}-{e['uuid']}.json" for e in fake.events) and not any(fake.kept)


def test_deploy_failure_names_host_task_message_and_stderr(runs, monkeypatch):
    install(monkeypatch, "failure")
    result = invoke("deploy", "-i", LOCALHOST)
    assert result.exit_code == 1
    out = result.output
    assert "✗ host-b failed at [client] task 'Start the client container': non-zero return code" in out
    assert "stderr: client start failed: server unreachable" in out
    assert "✗ host-c unreachable at [prechecks] task 'Check the engine answers'" in out
    assert "Connection refused" in out
    assert "deploy succeeded" not in out


def test_json_output_one_line_per_event_then_summary(runs, monkeypatch):
    install(monkeypatch, "failure")
    result = invoke("deploy", "-i", LOCALHOST, "--json")
    assert result.exit_code == 1
    lines = [json.loads(line) for line in result.output.splitlines() if line.strip()]
    events, summary = lines[:-1], lines[-1]
    assert events and all(e["type"] == "event" for e in events)
    assert all({"host", "stage", "task", "status", "changed"} <= set(e) for e in events)
    assert {"host": "host-b", "stage": "client", "task": "Start the client container"}.items() <= next(
        e for e in events if e["status"] == "failed" and not e["ignored"]
    ).items()
    assert any(e["status"] == "unreachable" and e["host"] == "host-c" for e in events)
    assert summary["type"] == "summary" and summary["exit_code"] == 1 and summary["status"] == "failed"
    assert summary["failed_hosts"] == ["host-b", "host-c"]
    host_b = next(h for h in summary["hosts"] if h["host"] == "host-b")
    assert host_b["failure"]["task"] == "Start the client container"
    assert host_b["failure"]["stderr_tail"] == ["client start failed: server unreachable"]
    host_a = next(h for h in summary["hosts"] if h["host"] == "host-a")
    assert host_a["models"] == {"person-detection": {"1": "AVAILABLE"}} and host_a["changed"] == 3
    assert Path(summary["run_dir"]).is_dir()


def test_json_success_exit_zero(runs, monkeypatch):
    install(monkeypatch, "success")
    result = invoke("deploy", "--json")
    assert result.exit_code == 0
    summary = json.loads(result.output.splitlines()[-1])
    assert summary["status"] == "successful" and summary["failed_hosts"] == []


def test_ctrl_c_cancels_the_runner_and_exits_130(runs, monkeypatch):
    fake = install(monkeypatch, "success", interrupt_after=12)
    before = signal.getsignal(signal.SIGINT)
    result = invoke("deploy", "-i", LOCALHOST)
    assert fake.cancel_seen, "SIGINT must make cancel_callback return True"
    assert result.exit_code == 130
    assert "interrupted" in result.output
    assert signal.getsignal(signal.SIGINT) is before  # the launcher's handler is removed after the run


def test_ansible_error_without_host_results_exits_1_with_output_tail(runs, monkeypatch):
    install(monkeypatch, None, status="failed", rc=4)
    result = invoke("deploy", "-i", LOCALHOST)
    assert result.exit_code == 1
    assert "ansible-playbook ended with status failed (rc 4)" in result.output
    assert "ERROR! the playbook could not be parsed" in result.output


def test_options_pass_through(runs, monkeypatch, tmp_path):
    fake = install(monkeypatch, "success")
    (tmp_path / "more.yml").write_text("ovms_server_image: ovms-launcher/ovms-double:dev\n")
    result = invoke(
        "deploy",
        "-i",
        LOCALHOST,
        "--limit",
        "localhost",
        "--tags",
        "all",  # a tag the playbooks know: an unknown one is refused before the run
        "-e",
        "ovms_server_grpc_port=9100",
        "-e",
        f"@{tmp_path / 'more.yml'}",
        "--check",
        "--diff",
        "-vv",
    )
    assert result.exit_code == 0, result.output
    [call] = fake.calls
    assert call["limit"] == "localhost" and call["tags"] == "all"
    assert call["cmdline"] == "--check --diff" and call["verbosity"] == 2
    assert call["extravars"] == {
        "ovms_server_grpc_port": "9100",
        "ovms_server_image": "ovms-launcher/ovms-double:dev",
    }
    assert call["envvars"]["ANSIBLE_CONFIG"] == str(PROJECT_ROOT / "ansible.cfg")


def test_deploy_with_invalid_extra_vars_runs_nothing(runs, monkeypatch):
    fake = install(monkeypatch, "success")
    result = invoke("deploy", "-i", LOCALHOST, "-e", "ovms_server_grpc_port=99999")
    assert result.exit_code == 2
    assert "ovms_server_grpc_port" in result.output and "65535" in result.output
    assert fake.calls == []
    assert not runs.exists() or not any(runs.iterdir())


def test_status_shows_containers_and_client_stats(runs, monkeypatch):
    fake = install(monkeypatch, "success")
    result = invoke("status", "-i", LOCALHOST)
    assert result.exit_code == 0, result.output
    assert fake.calls[0]["playbook"] == str(PROJECT_ROOT / "playbooks" / "status.yml")
    out = result.output
    assert "containers" in out and "ovms-launcher/ovms-double:dev" in out and "healthy" in out
    assert (
        "clients" in out and "person-detection-1" in out and "14.8" in out and "21.5" in out and "740" in out
    )


def test_status_json(runs, monkeypatch):
    install(monkeypatch, "success")
    result = invoke("status", "--json")
    summary = json.loads(result.output.splitlines()[-1])
    assert summary["action"] == "status"
    host_b = next(h for h in summary["hosts"] if h["host"] == "host-b")
    assert host_b["clients"][0]["latency_p95_ms"] == pytest.approx(21.5)


def test_destroy_passes_purge_with_yes(runs, monkeypatch):
    fake = install(monkeypatch, "success")
    result = invoke("destroy", "-i", LOCALHOST, "--purge", "--yes")
    assert result.exit_code == 0, result.output
    assert fake.calls[0]["playbook"] == str(PROJECT_ROOT / "playbooks" / "destroy.yml")
    assert fake.calls[0]["extravars"]["ovms_destroy_purge"] is True


def test_destroy_without_purge_keeps_data(runs, monkeypatch):
    fake = install(monkeypatch, "success")
    assert invoke("destroy").exit_code == 0
    assert "ovms_destroy_purge" not in fake.calls[0]["extravars"]


def test_destroy_purge_without_tty_or_yes_refuses(runs, monkeypatch):
    fake = install(monkeypatch, "success")
    result = invoke("destroy", "--purge")
    assert result.exit_code == 2
    assert "--yes" in result.output
    assert fake.calls == []


def test_destroy_purge_asks_on_a_tty(runs, monkeypatch):
    fake = install(monkeypatch, "success")
    monkeypatch.setattr(deploy_module, "_stdin_is_tty", lambda: True)
    declined = CliRunner().invoke(main, ["destroy", "--purge"], input="n\n")
    assert declined.exit_code == 2 and fake.calls == []
    accepted = CliRunner().invoke(main, ["destroy", "--purge"], input="y\n")
    assert accepted.exit_code == 0, accepted.output
    assert fake.calls[0]["extravars"]["ovms_destroy_purge"] is True


@pytest.mark.parametrize("command", ["destroy", "status"])
def test_destroy_and_status_refuse_an_unknown_limit_or_tag_before_running(runs, monkeypatch, command):
    fake = install(monkeypatch, "success")
    typo = invoke(command, "-i", LOCALHOST, "--limit", "localhots", "--json")
    assert typo.exit_code == 2, typo.output
    problems = json.loads(typo.output.strip().splitlines()[-1])["problems"]
    assert [(p["key"], "did you mean localhost?" in p["fix"]) for p in problems] == [("--limit", True)]
    tag = invoke(command, "-i", LOCALHOST, "--tags", "containrs")
    assert tag.exit_code == 2 and "--tags" in tag.output and "nothing was run" in tag.output, tag.output
    assert fake.calls == [] and not runs.exists()
    good = invoke(command, "-i", LOCALHOST, "--limit", "localhost", "--yes" if command == "destroy" else "-v")
    assert good.exit_code == 0, good.output
    assert fake.calls[0]["limit"] == "localhost"


def test_missing_inventory_is_invalid_input(runs, monkeypatch, tmp_path):
    fake = install(monkeypatch, "success")
    for command in ("deploy", "destroy", "status", "validate"):
        result = invoke(command, "-i", str(tmp_path / "nope"))
        assert result.exit_code == 2, (command, result.output)
        assert "inventory not found" in result.output
    assert fake.calls == []


def test_status_from_a_real_recorded_run(runs, monkeypatch):
    """Events recorded from playbooks/status.yml on a live single-system deploy (the double image)."""
    install(monkeypatch, "status-localhost")
    result = invoke("status")
    assert result.exit_code == 0, result.output
    out = result.output
    assert "│ localhost │ server" in out and "│ localhost │ client" in out
    assert "person-detection v1 AVAILABLE" in out
    assert "ovms-server running (healthy)" in out
    assert "ovms-client-person-detection-1" in out
    assert "Up 4 minutes" in out  # client container rows carry Docker's status text, not started_at
    assert "person-detection-1" in out and "15.0" in out and "33.0" in out and "3514" in out


def test_deploy_missing_image_from_a_real_recorded_run(runs, monkeypatch):
    """Events recorded from playbooks/deploy.yml --check when the real OVMS image is absent."""
    install(monkeypatch, "deploy-missing-image")
    result = invoke("deploy", "--json")
    assert result.exit_code == 1
    summary = json.loads(result.output.splitlines()[-1])
    [host] = summary["hosts"]
    assert summary["failed_hosts"] == ["localhost"] and host["status"] == "failed"
    assert host["failure"]["stage"] == "prechecks"
    assert "openvino/model_server:2025.0" in host["failure"]["task"]
    assert "-e ovms_server_image=ovms-launcher/ovms-double:dev" in host["failure"]["message"]
    assert host["failed"] == 1 and host["changed"] == 1


def test_verbose_shows_ansible_output_above_the_progress(runs, monkeypatch):
    install(monkeypatch, "failure")
    quiet = invoke("deploy", "-i", LOCALHOST).output
    verbose = invoke("deploy", "-i", LOCALHOST, "-v").output
    assert "PLAY [Client containers]" not in quiet
    assert "PLAY [Client containers]" in verbose
    assert "fatal: [host-b]" in verbose
