"""launcher.drift: the changed results of a check-mode run, summarised per site and host (issue 23)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from itertools import count
from pathlib import Path
from typing import Any

import pytest

from launcher.drift import (
    CATEGORIES,
    EXIT_CHANGES,
    EXIT_NO_CHANGES,
    CertificateDue,
    Change,
    build_report,
    changes_of,
    collect,
    render_lines,
)

pytestmark = pytest.mark.fleet

EVENTS = Path(__file__).resolve().parents[1] / "fixtures" / "events"
ROLES = "/srv/ovms-launcher/roles"
_counter = count(1)


def result(
    host: str,
    task: str,
    task_file: str,
    action: str,
    res: Mapping[str, Any],
    *,
    event: str = "runner_on_ok",
    task_uuid: str = "",
) -> dict[str, Any]:
    """A runner event of one host's result, shaped like ansible-runner's."""
    return {
        "counter": next(_counter),
        "event": event,
        "event_data": {
            "host": host,
            "task": task,
            "task_path": f"{ROLES}/{task_file}:12",
            "role": task_file.split("/")[0],
            "resolved_action": action,
            "task_action": action,
            "task_uuid": task_uuid or f"uuid-{task}",
            "play": "Server",
            "res": dict(res),
        },
    }


def swap(host: str, model: str, version: int, *, named: bool = True) -> dict[str, Any]:
    dest = f"/var/lib/ovms-launcher/server/models/{model}/{version}"
    res: dict[str, Any] = {"changed": True, "previous": None, "invocation": {"module_args": {"dest": dest}}}
    if named:
        res |= {"model": model, "version": str(version)}
    return result(
        host,
        "Put the verified version in place (an atomic exchange with the previous copy)",
        "ovms_models/tasks/version.yml",
        "ovms.edge.ovms_models_swap",
        res,
    )


def container(host: str, name: str, diff: Mapping[str, Any] | None, **args: Any) -> dict[str, Any]:
    item: dict[str, Any] = {
        "changed": True,
        "_ansible_item_label": name,
        "invocation": {"module_args": {"name": name, **args}},
    }
    if diff is not None:
        item["diff"] = dict(diff)
    return result(
        host,
        f"Run {name}",
        "ovms_common/tasks/container.yml",
        "community.docker.docker_container",
        {"changed": True, "results": [item, {"changed": False, "_ansible_item_label": "unchanged"}]},
    )


def test_a_model_version_copy_is_named_by_the_swap_and_its_steps_are_folded_into_it():
    staging = result(
        "host3",
        "Copy the version folder to staging",
        "ovms_models/tasks/version.yml",
        "ansible.builtin.copy",
        {"changed": True},
    )
    collector = collect([staging, swap("host3", "person-detection", 2)])
    assert collector.changes() == {
        "host3": [
            Change(
                "models",
                "person-detection v2",
                "Put the verified version in place (an atomic exchange with the previous copy)",
            )
        ]
    }


def test_a_swap_result_without_model_and_version_is_named_from_its_dest():
    (change,) = changes_of(swap("host1", "face-detection", 3, named=False)["event_data"])
    assert (change.category, change.what) == ("models", "face-detection v3")


@pytest.mark.parametrize(
    ("diff", "args", "expected"),
    [
        ({"before": {"exists": False}, "after": {"exists": True}}, {}, ("containers", "ovms-server (new)")),
        (
            {"before": {"image": "sha256:aa"}, "after": {"image": "sha256:bb"}, "image_different": True},
            {"image": "ovms-launcher/ovms-double:dev"},
            ("images", "ovms-server: image ovms-launcher/ovms-double:dev"),
        ),
        (
            {"before": {"env": {"A": "1"}, "memory": "4g"}, "after": {"env": {"A": "2"}, "memory": "2g"}},
            {},
            ("containers", "ovms-server: env, memory"),
        ),
        (
            {"before": {"running": False}, "after": {"running": True}},
            {},
            ("containers", "ovms-server (start)"),
        ),
        (None, {}, ("containers", "ovms-server")),
    ],
)
def test_container_results_say_new_image_or_the_settings_that_differ(diff, args, expected):
    collector = collect([container("host1", "ovms-server", diff, **args)])
    assert [(c.category, c.what) for c in collector.changes()["host1"]] == [expected]


def test_server_config_changes_name_the_model_and_its_versions():
    before = {"model_config_list": [{"config": {"name": "person-detection", "base_path": "/models/p"}}]}
    after = {
        "model_config_list": [
            {
                "config": {
                    "name": "person-detection",
                    "base_path": "/models/p",
                    "model_version_policy": {"specific": {"versions": [2]}},
                }
            }
        ]
    }
    event = result(
        "host3",
        "Render config.json",
        "ovms_server/tasks/main.yml",
        "ansible.builtin.copy",
        {
            "changed": True,
            "invocation": {"module_args": {"dest": "/var/lib/ovms-launcher/server/config/config.json"}},
            "diff": [{"before": json.dumps(before), "after": json.dumps(after)}],
        },
    )
    (change,) = changes_of(event["event_data"])
    assert (change.category, change.what) == ("models", "person-detection: latest 1 -> versions 2")


def test_images_profiles_certificates_and_other():
    events = [
        result(
            "host2",
            "Pull ovms-launcher/client:dev",
            "prechecks/tasks/pull.yml",
            "community.docker.docker_image_pull",
            {
                "changed": True,
                "results": [{"changed": True, "_ansible_item_label": "ovms-launcher/client:dev"}],
            },
        ),
        result(
            "host2",
            "Copy profile person-detection",
            "ovms_client/tasks/profile.yml",
            "ansible.builtin.copy",
            {"changed": True},
        ),
        result(
            "host2",
            "Place the client certificate",
            "ovms_client/tasks/tls.yml",
            "ansible.builtin.copy",
            {"changed": True},
        ),
        result(
            "host2",
            "Create the private network",
            "ovms_client/tasks/main.yml",
            "community.docker.docker_network",
            {"changed": True},
        ),
    ]
    changes = collect(events).changes()["host2"]
    assert [(c.category, c.what) for c in changes] == [
        ("images", "ovms-launcher/client:dev"),
        ("profiles", "person-detection"),
        ("certificates", "Place the client certificate"),
        ("other", "Create the private network"),
    ]


def test_certificates_are_told_by_task_file_and_module_not_by_task_name():
    def change(task: str, task_file: str, action: str) -> tuple[str, str]:
        (c,) = changes_of(result("h", task, task_file, action, {"changed": True})["event_data"])
        return c.category, c.what

    proxy = "ovms_tls_proxy/tasks/present.yml"
    folders = "Create the certificate and config folders"
    copy = "Copy the server certificate, key, CA bundle and CRL"
    assert change(folders, proxy, "ansible.builtin.file") == ("other", folders)
    assert change(copy, proxy, "ansible.builtin.copy") == ("certificates", copy)
    marker = "Mark the gateway's certificate folder as this deployment's"
    assert change(marker, "ovms_monitoring/tasks/gateway.yml", "ansible.builtin.copy") == ("other", marker)


def test_unchanged_skipped_failed_and_handler_results_are_no_change():
    handler_uuid = "uuid-handler"
    events = [
        result("host1", "Read what the server holds", "ovms_models/tasks/main.yml", "x", {"changed": False}),
        result(
            "host1",
            "Skipped",
            "ovms_server/tasks/main.yml",
            "x",
            {"changed": True},
            event="runner_on_skipped",
        ),
        result(
            "host1", "Failed", "ovms_server/tasks/main.yml", "x", {"changed": True}, event="runner_on_failed"
        ),
        {
            "counter": next(_counter),
            "event": "playbook_on_handler_task_start",
            "event_data": {"task_uuid": handler_uuid, "name": "Reload OVMS configuration"},
        },
        result(
            "host1",
            "Reload OVMS configuration",
            "ovms_server/handlers/main.yml",
            "x",
            {"changed": True},
            task_uuid=handler_uuid,
        ),
    ]
    collector = collect(events)
    assert collector.hosts == ["host1"]
    assert collector.changes() == {}


def test_the_report_groups_hosts_per_site_in_inventory_order_with_unsited_hosts_last():
    changes = {"host3": [Change("models", "person-detection v2", "swap")]}
    site_of = {"host1": "store-a", "host2": "store-a", "host3": "store-b", "host9": ""}
    report = build_report(
        ["host9", "host1", "host2", "host3"], changes, site_of, site_order=["store-a", "store-b"]
    )
    assert list(report.sites) == ["store-a", "store-b", ""]
    assert report.changed and report.exit_code == EXIT_CHANGES
    assert report.changed_hosts() == ["host3"]
    assert report.to_dict() == {
        "changed": True,
        "sites": {
            "store-a": {
                "hosts": {
                    "host1": {"changes": [], "status": "ok"},
                    "host2": {"changes": [], "status": "ok"},
                }
            },
            "store-b": {
                "hosts": {
                    "host3": {
                        "changes": [{"category": "models", "what": "person-detection v2", "task": "swap"}],
                        "status": "ok",
                    }
                }
            },
            "": {"hosts": {"host9": {"changes": [], "status": "ok"}}},
        },
        "certificates": [],
        "certificate_errors": [],
    }
    assert render_lines(report) == [
        "site store-a",
        "  host1: nothing would change",
        "  host2: nothing would change",
        "site store-b",
        "  host3: models: person-detection v2",
        "hosts without a site",
        "  host9: nothing would change",
    ]


def test_nothing_to_change_is_exit_0_and_the_json_document_is_one_object():
    report = build_report(["host1"], {}, {"host1": "store-a"})
    assert not report.changed and report.exit_code == EXIT_NO_CHANGES
    document = json.loads(json.dumps(report.to_dict()))
    assert document == {
        "changed": False,
        "sites": {"store-a": {"hosts": {"host1": {"changes": [], "status": "ok"}}}},
        "certificates": [],
        "certificate_errors": [],
    }


def test_failed_and_unreachable_hosts_are_not_checked_and_exit_1():
    changes = {"host1": [Change("models", "person-detection v2", "swap")]}
    report = build_report(
        ["host1", "host2", "host3"],
        changes,
        {"host1": "store-a", "host2": "store-a", "host3": "store-a"},
        status={"host1": "failed", "host2": "unreachable", "host3": "ok"},
        reasons={"host1": "Check the role's variables: bad"},
    )
    hosts = report.to_dict()["sites"]["store-a"]["hosts"]
    assert {h: v["status"] for h, v in hosts.items()} == {
        "host1": "failed",
        "host2": "unreachable",
        "host3": "ok",
    }
    assert report.exit_code == 1
    assert render_lines(report) == [
        "site store-a",
        "  host1: not checked (failed: Check the role's variables: bad);"
        " found before: models: person-detection v2",
        "  host2: not checked (unreachable)",
        "  host3: nothing would change",
    ]


def test_an_unknown_host_status_is_refused():
    with pytest.raises(ValueError, match="unknown host status"):
        build_report(["host1"], {}, {}, status={"host1": "dark"})


def test_a_pki_folder_that_cannot_be_read_is_exit_1_and_listed():
    error = "cannot check the server certificates in /pki: bad PEM"
    report = build_report(["host1"], {}, {"host1": "store-a"}, certificate_errors=[error])
    assert report.exit_code == 1 and report.to_dict()["certificate_errors"] == [error]
    assert render_lines(report)[-1] == f"certificate check failed: {error}"


def test_a_due_certificate_is_a_change_of_its_host_and_listed():
    due = CertificateDue("host1", "2026-12-09T00:00:00+00:00", "would renew the server certificate of host1")
    changes = {"host1": [Change("containers", "ovms-server: env", "Run ovms-server")]}
    report = build_report(["host1"], changes, {"host1": "store-a"}, [due])
    host = report.to_dict()["sites"]["store-a"]["hosts"]["host1"]["changes"]
    assert [c["category"] for c in host] == ["containers", "certificates"]
    assert report.to_dict()["certificates"] == [due.to_dict()]
    assert report.exit_code == EXIT_CHANGES
    assert CATEGORIES.index("certificates") > CATEGORIES.index("containers")


@pytest.mark.parametrize("scenario", ["success", "failure"])
def test_recorded_runs_replay_every_host_and_changed_task(scenario: str):
    events = [json.loads(line) for line in (EVENTS / scenario / "events.jsonl").read_text().splitlines()]
    collector = collect(events)
    changed = {
        e["event_data"]["host"]
        for e in events
        if e.get("event") == "runner_on_ok" and (e["event_data"].get("res") or {}).get("changed")
    }
    assert set(collector.changes()) == changed
    assert set(changed) <= set(collector.hosts)
    # the fixture roles are not the project's: their changes are `other`, each named by its task
    for host_changes in collector.changes().values():
        assert {c.category for c in host_changes} == {"other"}
        assert all(c.what.startswith(c.task) for c in host_changes)


def test_images_the_prechecks_would_ship_are_named():
    event = result(
        "store-b-server",
        "Ship the images this host lacks from the controller's archives",
        "../playbooks/deploy.yml",
        "ovms.edge.ovms_image_ship",
        {"changed": True, "missing": [{"tag": "ovms-launcher/ovms-double:dev", "file": "ovms-double.tar"}]},
    )
    (change,) = changes_of(event["event_data"])
    assert (change.category, change.what) == ("images", "ovms-launcher/ovms-double:dev (ship)")


# -- the command: validation, the check run and the exit codes (the run itself replaced) ------------
FLEET = Path(__file__).resolve().parents[2] / "inventories" / "example-fleet"


@pytest.fixture
def diff_run(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """`launcher diff -i inventories/example-fleet ARGS` with the events given instead of a run."""
    from click.testing import CliRunner

    from launcher.cli import main
    from launcher.commands import diff as diff_module
    from launcher.inventory import load_inventory
    from launcher.pki.deploy_renewal import RenewalCheck
    from launcher.runner import RunOutcome
    from launcher.validate import Problem

    requests: list[Any] = []
    inventory = load_inventory([FLEET])

    class Report:
        ok = True
        warnings = [Problem("inventories/example-fleet/hosts.yml", "ovms_site", "a warning", "a fix")]

        def __init__(self) -> None:
            self.inventory = inventory

    check = RenewalCheck()

    def run(
        events: list[dict[str, Any]],
        *args: str,
        status: str = "successful",
        rc: int = 0,
        certificate_errors: tuple[str, ...] = (),
    ):
        check.failures.extend(certificate_errors)

        def fake_run(request: Any, on_event: Any, **_: Any) -> RunOutcome:
            requests.append(request)
            for event in events:
                on_event(event)
            return RunOutcome(status=status, rc=rc, canceled=False, run_dir=tmp_path)

        monkeypatch.setattr(diff_module, "run_playbook", fake_run)
        monkeypatch.setattr(diff_module, "_validated", lambda *a, **k: Report())
        monkeypatch.setattr(diff_module, "check_renewals", lambda *a, **k: check)
        return CliRunner().invoke(main, ["diff", "-i", str(FLEET), *args]), requests

    return run


def ok(host: str) -> dict[str, Any]:
    return result(host, "Read what the server holds", "ovms_models/tasks/main.yml", "x", {"changed": False})


def test_the_command_runs_deploy_yml_in_check_and_diff_mode_and_exits_0_when_nothing_would_change(diff_run):
    outcome, requests = diff_run([ok("store-a-server"), ok("store-b-server")], "--forks", "3")
    assert outcome.exit_code == EXIT_NO_CHANGES, outcome.output
    (request,) = requests
    assert request.playbook.name == "deploy.yml" and request.check and request.diff
    assert request.forks == 3
    assert "site store-a" in outcome.output and "store-a-server: nothing would change" in outcome.output
    assert "nothing would change on 2 host(s)" in outcome.output


def test_the_command_exits_3_and_prints_one_json_document_naming_the_site_and_host(diff_run):
    outcome, _ = diff_run([ok("store-a-server"), swap("store-b-server", "person-detection", 2)], "--json")
    assert outcome.exit_code == EXIT_CHANGES, outcome.output
    (line,) = [line for line in outcome.output.splitlines() if line.strip()]
    document = json.loads(line)
    assert document["changed"] is True and document["exit_code"] == EXIT_CHANGES
    assert list(document["sites"]) == ["store-a", "store-b"]
    (change,) = document["sites"]["store-b"]["hosts"]["store-b-server"]["changes"]
    assert (change["category"], change["what"]) == ("models", "person-detection v2")
    assert document["sites"]["store-a"]["hosts"]["store-a-server"]["changes"] == []
    assert document["sites"]["store-a"]["hosts"]["store-a-server"]["status"] == "ok"
    (warning,) = document["warnings"]
    assert (warning["key"], warning["fix"]) == ("ovms_site", "a fix")
    assert document["certificate_errors"] == []


def test_a_failed_check_run_is_exit_1_with_the_failure_in_the_document(diff_run):
    failed = result(
        "store-a-server", "Check the role's variables", "ovms_server/tasks/main.yml", "x", {"msg": "bad"}
    )
    failed["event"] = "runner_on_failed"
    outcome, _ = diff_run([failed, ok("store-b-server")], "--json", status="failed", rc=2)
    assert outcome.exit_code == 1, outcome.output
    document = json.loads(outcome.output.strip().splitlines()[-1])
    assert document["exit_code"] == 1 and document["failed"]["failed_hosts"] == ["store-a-server"]
    assert document["sites"]["store-a"]["hosts"]["store-a-server"]["status"] == "failed"
    assert document["sites"]["store-b"]["hosts"]["store-b-server"]["status"] == "ok"


def test_a_failed_host_is_not_checked_in_the_human_report(diff_run):
    failed = result(
        "store-a-server", "Check the role's variables", "ovms_server/tasks/main.yml", "x", {"msg": "bad"}
    )
    failed["event"] = "runner_on_failed"
    outcome, _ = diff_run([failed, ok("store-b-server")], status="failed", rc=2)
    assert outcome.exit_code == 1, outcome.output
    assert "store-a-server: not checked (failed: " in outcome.output
    assert "store-a-server: nothing would change" not in outcome.output


def test_an_unreadable_pki_is_exit_1_with_the_errors_in_the_document_and_the_report(diff_run):
    error = "cannot check the server certificates in /pki: bad PEM"
    outcome, _ = diff_run([ok("store-a-server")], "--json", certificate_errors=(error,))
    assert outcome.exit_code == 1, outcome.output
    document = json.loads(outcome.output.strip().splitlines()[-1])
    assert document["certificate_errors"] == [error] and document["exit_code"] == 1
    outcome, _ = diff_run([ok("store-a-server")])
    assert outcome.exit_code == 1, outcome.output
    assert f"certificate check failed: {error}" in outcome.output
    assert "nothing would change on" not in outcome.output


@pytest.fixture
def fleet_with_pki(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """inventories/example-fleet with a complete PKI (OVMS_LAUNCHER_CERTS_DIR): it validates."""
    from click.testing import CliRunner

    from launcher.cli import main
    from launcher.pki.layout import CERTS_DIR_ENV

    monkeypatch.setenv(CERTS_DIR_ENV, str(tmp_path / "certs"))
    generated = CliRunner().invoke(main, ["certs", "generate", "-i", str(FLEET)])
    assert generated.exit_code == 0, generated.output
    valid = CliRunner().invoke(main, ["validate", "-i", str(FLEET), "--json"])
    assert valid.exit_code == 0, valid.output
    return FLEET


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (["--forks", "0"], "--forks"),  # a usage error (click)
        (["-l", "nosuchhost", "--json"], "--limit"),  # the validation report
    ],
)
def test_invalid_input_is_exit_2_before_anything_runs(
    monkeypatch: pytest.MonkeyPatch, fleet_with_pki: Path, args: list[str], reason: str
):
    from click.testing import CliRunner

    from launcher.cli import main
    from launcher.commands import diff as diff_module

    def no_run(*_: Any, **__: Any) -> None:
        raise AssertionError("nothing may run on invalid input")

    monkeypatch.setattr(diff_module, "run_playbook", no_run)
    monkeypatch.setattr(diff_module, "check_renewals", no_run)
    outcome = CliRunner().invoke(main, ["diff", "-i", str(fleet_with_pki), *args])
    assert outcome.exit_code == 2, outcome.output
    if "--json" in args:
        document = json.loads(outcome.output)  # one document: the validation report
        assert [p["key"] for p in document["problems"]] == [reason], document
    else:
        assert reason in outcome.output and "Invalid value" in outcome.output


def test_a_pki_folder_the_dry_run_cannot_read_is_a_failure_not_nothing_due(
    fleet_with_pki: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """check_renewals returns the failures (printing nothing) instead of an empty list alone. (A
    corrupt certificate file is the validation's: `launcher diff` exits 2 before the dry run.)"""
    from launcher.errors import LauncherError
    from launcher.inventory import load_inventory
    from launcher.pki import deploy_renewal

    def unreadable(*_: Any, **__: Any) -> None:
        raise LauncherError("cannot read ca.crt", file="ca.crt", fix="restore the CA")

    monkeypatch.setattr(deploy_renewal, "due_server_certificates", unreadable)
    check = deploy_renewal.check_renewals(load_inventory([fleet_with_pki]), {}, dry_run=True)
    assert check.renewals == []
    (failure,) = check.failures
    assert failure.startswith(f"cannot check the server certificates in {tmp_path / 'certs'}"), failure
