"""Runner events -> stages, counts, failures, summary facts; runner arguments; extra vars; run dirs."""

from __future__ import annotations

import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from launcher.errors import LauncherError
from launcher.runner import RunRequest, parse_extra_vars, replay, runner_kwargs, stage_of, summarize
from launcher.runner.rundir import new_run_dir
from testbed.paths import PROJECT_ROOT

EVENTS = Path(__file__).resolve().parents[1] / "fixtures" / "events"


def load_events(scenario: str) -> list[dict]:
    lines = (EVENTS / scenario / "events.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def outcome(scenario: str) -> dict:
    return json.loads((EVENTS / scenario / "outcome.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize(
    ("event_data", "stage"),
    [
        ({"role": "prechecks", "play": "Whatever"}, "prechecks"),
        ({"role": "ovms_models", "play": "Models"}, "models"),
        ({"role": "ovms_server", "play": "Server"}, "server"),
        ({"role": "ovms_tls_proxy", "play": "Server"}, "server"),
        ({"role": "ovms_client", "play": "Client"}, "client"),
        ({"role": "ovms_camera", "play": "Camera"}, "camera"),
        ({"role": "ovms.edge.ovms_monitoring", "play": "Monitoring exporters"}, "monitoring"),
        ({"role": "ovms_monitoring", "play": "Prechecks of the monitoring"}, "prechecks"),
        ({"play": "Monitoring"}, "monitoring"),
        ({"role": "ovms_common", "play": "Monitoring"}, "monitoring"),
        ({"role": "ovms_helper", "play": "Server"}, "server"),  # no stage of its name: the play's
        ({"role": "ovms_common", "play": "Camera"}, "camera"),  # the shared container task
        ({"role": "ovms_client", "play": "Verify"}, "verify"),  # the verify play reuses the client role
        ({"role": "project.ovms.ovms_server"}, "server"),
        ({"play": "Verify the deployment"}, "verify"),
        ({"play": "Summary"}, "summary"),
        ({"play": "destroy: remove containers"}, "destroy"),
        ({"play": "Status of every host"}, "status"),
        ({"play": "Gather something"}, "other"),
        ({"role": "some_helper", "play": "Client containers"}, "client"),
        ({}, "other"),
    ],
)
def test_stage_of_role_then_play_name(event_data, stage):
    assert stage_of(event_data) == stage


def test_success_replay_counts_per_host_and_stage():
    snap = replay(load_events("success")).snapshot()
    rows = {(r.host, r.stage): r for r in snap.rows}
    assert snap.hosts == ["host-a", "host-b"]
    # prechecks: one ok task; the ignore_errors failure counts as ignored, not failed
    pre = rows[("host-a", "prechecks")]
    assert (pre.ok, pre.failed, pre.ignored) == (1, 0, 1)
    # the loop task counts once, not once per item
    models = rows[("host-a", "models")]
    assert (models.ok, models.changed) == (1, 1)
    server = rows[("host-a", "server")]
    assert (server.ok, server.changed, server.skipped) == (2, 1, 1)
    assert ("host-b", "server") not in rows  # host-b is only a client
    assert rows[("host-a", "verify")].ok == 2
    assert rows[("host-b", "verify")].skipped == 1
    assert rows[("host-b", "summary")].current_task == "Collect the summary"
    assert snap.failures == {}
    assert snap.stats is not None and snap.stats["changed"] == {"host-a": 3, "host-b": 1}


def test_success_summary_facts_and_exit_code():
    state = replay(load_events("success"))
    meta = outcome("success")
    summary = summarize(
        "deploy",
        state.snapshot(),
        runner_status=meta["status"],
        runner_rc=meta["rc"],
        canceled=False,
        run_dir=None,
    )
    assert summary.exit_code == 0 and summary.status == "successful"
    a, b = summary.hosts
    assert a.roles == ["server", "client"] and b.roles == ["client"]
    assert a.endpoint == "ovms-server:9000" and b.endpoint is None
    assert a.models == {"person-detection": {"1": "AVAILABLE"}}
    assert a.containers[0]["name"] == "ovms-server" and a.containers[0]["health"] == "healthy"
    assert b.clients[0]["fps"] == pytest.approx(14.8)
    assert (a.changed, a.failed, b.changed) == (3, 0, 1)
    assert a.seconds is not None and a.seconds > 0


def test_failure_replay_names_task_message_and_stderr():
    state = replay(load_events("failure"))
    meta = outcome("failure")
    summary = summarize(
        "deploy",
        state.snapshot(),
        runner_status=meta["status"],
        runner_rc=meta["rc"],
        canceled=False,
        run_dir=None,
    )
    assert summary.exit_code == 1 and summary.status == "failed"
    by_host = {h.host: h for h in summary.hosts}
    assert by_host["host-a"].status == "ok" and by_host["host-a"].failure is None
    failed = by_host["host-b"]
    assert failed.status == "failed" and failed.failure is not None
    assert failed.failure.task == "Start the client container"
    assert failed.failure.stage == "client"
    assert failed.failure.message == "non-zero return code"
    assert failed.failure.stderr_tail == ("client start failed: server unreachable",)
    gone = by_host["host-c"]
    assert gone.status == "unreachable" and gone.failure is not None and gone.failure.unreachable
    assert "Connection refused" in gone.failure.message
    assert [h.host for h in summary.failed_hosts] == ["host-b", "host-c"]


def test_ignored_failure_alone_is_not_a_host_failure():
    events = [e for e in load_events("success") if e["event"] != "playbook_on_stats"]
    summary = summarize(
        "deploy",
        replay(events).snapshot(),
        runner_status="successful",
        runner_rc=0,
        canceled=False,
        run_dir=None,
    )
    assert summary.exit_code == 0
    assert all(h.failed == 0 and h.ignored == 1 for h in summary.hosts)


def test_rescued_failure_does_not_fail_the_host_when_stats_say_so():
    events = load_events("success")
    failed = {
        "event": "runner_on_failed",
        "counter": 10_000,
        "event_data": {"host": "host-a", "task": "Try", "role": "ovms_server", "res": {"msg": "first try"}},
    }
    stats = next(e for e in events if e["event"] == "playbook_on_stats")
    stats = {**stats, "counter": 10_001, "event_data": {**stats["event_data"], "rescued": {"host-a": 1}}}
    state = replay([*events, failed, stats])
    summary = summarize(
        "deploy", state.snapshot(), runner_status="successful", runner_rc=0, canceled=False, run_dir=None
    )
    assert summary.exit_code == 0
    assert summary.hosts[0].rescued == 1


def test_cancel_and_ansible_error_exit_codes():
    snap = replay(load_events("success")[:20]).snapshot()
    cancelled = summarize(
        "deploy", snap, runner_status="canceled", runner_rc=254, canceled=True, run_dir=None
    )
    assert cancelled.exit_code == 130 and cancelled.status == "canceled"
    empty = replay([]).snapshot()
    error = summarize(
        "deploy",
        empty,
        runner_status="failed",
        runner_rc=4,
        canceled=False,
        run_dir=None,
        output_tail=("ERROR! x",),
    )
    assert error.exit_code == 1 and error.status == "error"
    assert "rc 4" in error.message and error.output_tail == ("ERROR! x",)


def test_loop_failure_reports_the_failed_item():
    event = {
        "event": "runner_on_failed",
        "counter": 1,
        "event_data": {
            "host": "h",
            "task": "Copy",
            "play": "Models",
            "res": {
                "msg": "One or more items failed",
                "results": [
                    {"failed": False},
                    {"failed": True, "msg": "checksum mismatch", "stderr": "a\nb"},
                ],
            },
        },
    }
    failure = replay([event]).snapshot().failures["h"]
    assert failure.message == "checksum mismatch" and failure.stderr_tail == ("a", "b")
    assert failure.stage == "models"


def test_runner_kwargs_wire_path_config_and_options(tmp_path):
    request = RunRequest(
        action="deploy",
        playbook=PROJECT_ROOT / "playbooks" / "deploy.yml",
        inventories=(tmp_path / "a", tmp_path / "b.yml"),
        extravars={"x": 1},
        limit="host-a",
        tags="server,client",
        check=True,
        diff=True,
        verbosity=3,
    )
    kwargs = runner_kwargs(request, tmp_path / "run")
    assert kwargs["private_data_dir"] == str(tmp_path / "run")
    assert kwargs["playbook"] == str(PROJECT_ROOT / "playbooks" / "deploy.yml")
    assert kwargs["inventory"] == [str(tmp_path / "a"), str(tmp_path / "b.yml")]
    assert kwargs["envvars"]["ANSIBLE_CONFIG"] == str(PROJECT_ROOT / "ansible.cfg")
    assert kwargs["envvars"]["PATH"].split(os.pathsep)[0] == str(Path(sys.executable).parent)
    assert kwargs["extravars"] == {"x": 1}
    assert (kwargs["limit"], kwargs["tags"], kwargs["verbosity"]) == ("host-a", "server,client", 3)
    assert kwargs["cmdline"] == "--check --diff"
    assert kwargs["quiet"] is True
    assert kwargs["settings"]["pexpect_timeout"] <= 1  # Ctrl+C is noticed quickly
    plain = runner_kwargs(RunRequest("status", tmp_path / "p.yml", (tmp_path,)), tmp_path)
    assert not {"limit", "tags", "cmdline", "verbosity"} & set(plain)


def test_extra_vars_merge_in_order(tmp_path):
    (tmp_path / "vars.yml").write_text("a: from-file\nnested: {k: [1, 2]}\n")
    merged = parse_extra_vars(["a=1 b='two words'", f"@{tmp_path / 'vars.yml'}", '{"c": true}', "a=last"])
    assert merged == {"a": "last", "b": "two words", "nested": {"k": [1, 2]}, "c": True}


@pytest.mark.parametrize(
    ("spec", "needle"),
    [
        ("@/nonexistent/vars.yml", "cannot read the extra-vars file"),
        ("[1, 2]", "must be a JSON object"),
        ("justaword", "is not name=value"),
        ('{"a": ', "not valid JSON"),
        ('{"not an identifier": 1}', "not a valid variable name"),
    ],
)
def test_extra_vars_errors_name_the_option(spec, needle):
    with pytest.raises(LauncherError) as err:
        parse_extra_vars([spec])
    assert needle in err.value.render()
    assert "--extra-vars" in err.value.render()


def test_run_dirs_are_fresh_and_named_by_time_and_action(tmp_path):
    now = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    first = new_run_dir("deploy", tmp_path, now)
    second = new_run_dir("deploy", tmp_path, now)
    assert first.name == "20260102T030405Z-deploy"
    assert second.name == "20260102T030405Z-deploy-2"
    assert first.is_dir() and second.is_dir()


def test_runs_root_follows_the_environment(tmp_path, monkeypatch):
    from launcher.runner import runs_root

    monkeypatch.setenv("OVMS_LAUNCHER_RUNS", str(tmp_path / "r"))
    assert runs_root() == tmp_path / "r"
    monkeypatch.delenv("OVMS_LAUNCHER_RUNS")
    assert runs_root() == PROJECT_ROOT / "runs"
