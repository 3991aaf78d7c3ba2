"""`launcher validate` and deploy's validation step on bad inventories: every message names the file,
the key and a fix, all problems are listed, exit code 2, and Ansible never runs."""

from __future__ import annotations

import json
from pathlib import Path

import ansible_runner
import pytest
from click.testing import CliRunner

from launcher.cli import main
from launcher.validate import validate
from testbed.paths import PROJECT_ROOT

BAD = Path(__file__).resolve().parents[1] / "fixtures" / "inventories"
PROFILES = PROJECT_ROOT / "profiles"


def _extra(name: str) -> list[str]:
    if name == "bad-profile-schema":  # profile paths must be absolute: given at test time
        return ["-e", f"ovms_client_profiles_src={BAD / name / 'profiles'}"]
    return []


def _inventory(name: str) -> Path:
    # bad-profile-schema also holds a profiles/ folder, so its inventory is passed as a file
    return BAD / name / "hosts.yml" if name == "bad-profile-schema" else BAD / name


# name -> (file the error names, key, words of the message, words of the fix)
CASES = {
    "bad-no-servers": (
        "bad-no-servers",
        "ovms_servers",
        "no host in group ovms_servers",
        "add at least one host",
    ),
    "bad-unknown-var": (
        "bad-unknown-var/group_vars/ovms_servers.yml",
        "ovms_server_grcp_port",
        "unknown variable",
        "did you mean ovms_server_grpc_port",
    ),
    "bad-port-type": (
        "bad-port-type/host_vars/localhost.yml",
        "ovms_server_grpc_port",
        "valid integer",
        "the default is ovms_server_grpc_port: 9000",
    ),
    "bad-port-range": (
        "bad-port-range/hosts.yml",
        "ovms_server_rest_port",
        "less than or equal to 65535 (got 70000)",
        "roles/ovms_server/defaults/main.yml",
    ),
    "bad-same-ports": (
        "bad-same-ports/group_vars/all.yml",
        "ovms_server_rest_port",
        "equals ovms_server_grpc_port (9000)",
        "give the REST API another port",
    ),
    "bad-relative-path": (
        "bad-relative-path/group_vars/ovms_servers.yml",
        "ovms_server_data_dir",
        "must be an absolute path",
        "the default is ovms_server_data_dir: /var/lib/ovms-launcher/server",
    ),
    "bad-client-server": (
        "bad-client-server/group_vars/ovms_clients.yml",
        "ovms_client_server",
        "'ovms-srv' is not a host of group ovms_servers",
        "did you mean ovms-server",
    ),
    "bad-missing-profile": (
        "bad-missing-profile/group_vars/all.yml",
        "ovms_client_profiles[0].name",
        f"no profile folder {PROFILES / 'person-detectoin'}",
        "did you mean person-detection",
    ),
    "bad-profile-schema": (
        "bad-profile-schema/profiles/broken/profile.yaml",
        "model.dtype",
        "expected 'uint8' or 'float32' (got 'int8')",
        "docs/profiles.md",
    ),
    "bad-model-not-in-manifest": (
        "bad-model-not-in-manifest/group_vars/ovms_servers.yml",
        "ovms_server_models[0].name",
        "model 'people-detection' is not in the models manifest",
        "source: manual",
    ),
    "bad-model-not-served": (
        str(PROFILES / "person-detection" / "profile.yaml"),
        "model.name",
        "is not served by localhost (its ovms_server_models: face-detection)",
        "add `- name: person-detection` to ovms_server_models of localhost",
    ),
    "bad-duplicate-profile": (
        "bad-duplicate-profile/group_vars/all.yml",
        "ovms_client_profiles",
        "profile person-detection listed twice on one host",
        "instances: N",
    ),
    "bad-version-policy": (
        "bad-version-policy/host_vars/localhost.yml",
        "ovms_server_models[0].version_policy",
        "must have exactly one of all, specific, latest",
        "roles/ovms_server/defaults/main.yml",
    ),
    "bad-inventory-syntax": (
        "bad-inventory-syntax/hosts.yml",
        "",
        "not a valid Ansible inventory",
        "ansible-inventory -i FILE --list",
    ),
    "bad-prechecks-prefix": (
        "bad-prechecks-prefix/group_vars/all.yml",
        "ovms_prechecks_ports",
        "unknown variable",
        "did you mean prechecks_ports",
    ),
}


@pytest.fixture
def no_ansible(monkeypatch, tmp_path):
    calls: list[dict] = []

    def forbidden(**kwargs):
        calls.append(kwargs)
        raise AssertionError("ansible-runner must not run when validation fails")

    monkeypatch.setattr(ansible_runner, "run_async", forbidden)
    monkeypatch.setattr(ansible_runner, "run", forbidden)
    monkeypatch.setenv("OVMS_LAUNCHER_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("COLUMNS", "250")
    return calls


def test_at_least_ten_bad_inventories_are_covered():
    on_disk = {p.name for p in BAD.iterdir() if p.name.startswith("bad-")}
    assert set(CASES) | {"bad-several"} == on_disk
    assert len(CASES) >= 10


@pytest.mark.parametrize("name", sorted(CASES))
def test_validate_names_file_key_and_fix(name):
    file, key, message, fix = CASES[name]
    extravars = {}
    if name == "bad-profile-schema":
        extravars = {"ovms_client_profiles_src": str(BAD / name / "profiles")}
    report = validate([_inventory(name)], extravars)
    assert not report.ok
    [problem] = report.problems
    expected_file = file if file.startswith("/") else str(BAD / file)
    assert problem.file == expected_file
    assert problem.key == key
    assert message in problem.message
    assert fix in problem.fix


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("command", ["validate", "deploy"])
def test_cli_exits_2_prints_the_problem_and_runs_nothing(name, command, no_ansible):
    file, key, message, fix = CASES[name]
    result = CliRunner().invoke(main, [command, "-i", str(_inventory(name)), *_extra(name)])
    assert result.exit_code == 2, result.output
    text = " ".join(result.output.split())  # rich may wrap long lines
    assert key in text and message in text and fix in text
    assert Path(file).name in text
    assert "nothing was run" in text
    assert no_ansible == []


def test_all_problems_are_reported_not_only_the_first(no_ansible):
    report = validate([BAD / "bad-several"])
    found = {(Path(p.file).name, p.key, p.hosts) for p in report.problems}
    assert found == {
        ("ovms_servers.yml", "ovms_server_log_level", ("server-1", "server-2")),
        ("ovms_servers.yml", "ovms_server_models[0].nireq", ("server-1", "server-2")),
        ("server-2.yml", "ovms_server_grpc_workers", ("server-2",)),
        ("hosts.yml", "ovms_client_server", ("camera-1",)),
    }
    result = CliRunner().invoke(main, ["deploy", "-i", str(BAD / "bad-several"), "--json"])
    assert result.exit_code == 2
    payload = json.loads(result.output.strip().splitlines()[-1])
    assert payload["valid"] is False and len(payload["problems"]) == 4
    assert no_ansible == []


def test_extra_vars_are_validated_and_named(no_ansible):
    result = CliRunner().invoke(main, ["validate", "-e", "ovms_server_log_level=LOUD"])
    assert result.exit_code == 2
    assert "--extra-vars: ovms_server_log_level" in " ".join(result.output.split())


def test_extra_vars_can_fix_an_inventory(no_ansible):
    report = validate([BAD / "bad-same-ports"], {"ovms_server_rest_port": "8000"})
    assert report.ok, [p.render() for p in report.problems]


def test_default_and_example_inventories_are_valid():
    for inventory in ("localhost", "example-remote"):
        report = validate([PROJECT_ROOT / "inventories" / inventory])
        assert report.ok, [p.render() for p in report.problems]
    local = validate([PROJECT_ROOT / "inventories" / "localhost"])
    assert local.assignments == {"localhost": "localhost"}
    assert [p.name for p in local.profiles["localhost"]] == ["person-detection"]


def test_templated_values_are_left_to_ansible(tmp_path):
    inv = tmp_path / "hosts.yml"
    inv.write_text(
        "all:\n  children:\n    ovms_servers:\n      hosts:\n        localhost:\n"
        "  vars:\n    base: 9000\n    ovms_server_grpc_port: '{{ base + 1 }}'\n"
    )
    report = validate([inv])
    assert report.ok
    assert report.deferred["localhost"] == {"ovms_server_grpc_port"}


def test_manual_models_need_no_manifest_entry(tmp_path):
    inv = tmp_path / "hosts.yml"
    inv.write_text(
        "all:\n  children:\n    ovms_servers:\n      hosts:\n        localhost:\n"
        "  vars:\n    ovms_server_models:\n      - {name: my-own-model, source: manual}\n"
    )
    assert validate([inv]).ok


def test_a_specific_version_must_be_in_the_manifest(tmp_path):
    inv = tmp_path / "hosts.yml"
    inv.write_text(
        "all:\n  children:\n    ovms_servers:\n      hosts:\n        localhost:\n"
        "  vars:\n    ovms_server_models:\n"
        "      - {name: person-detection, version_policy: {specific: {versions: [1, 7]}}}\n"
    )
    [problem] = validate([inv]).problems
    assert problem.key == "ovms_server_models[0].version_policy.specific.versions"
    assert "version 7 of 'person-detection' is not in the manifest" in problem.message
    assert problem.file == str(inv)


def test_two_servers_on_one_machine_need_their_own_container_names(tmp_path):
    inv = tmp_path / "hosts.yml"
    inv.write_text(
        "all:\n  children:\n    ovms_servers:\n      hosts:\n        a:\n        b:\n"
        "  vars:\n    ansible_connection: local\n"
    )
    [problem] = validate([inv]).problems
    assert problem.key == "ovms_server_container_name" and problem.hosts == ("b",)
    assert "'ovms-server' is also the server container of a on the same machine" in problem.message


def test_two_clients_on_one_machine_need_their_own_container_prefix(tmp_path):
    inv = tmp_path / "hosts.yml"
    inv.write_text(
        "all:\n  children:\n    ovms_servers:\n      hosts:\n        s:\n"
        "    ovms_clients:\n      hosts:\n        c1:\n        c2:\n"
        "  vars:\n    ansible_connection: local\n"
        "    ovms_server_models: [{name: person-detection}]\n"
        "    ovms_client_profiles: [{name: person-detection}]\n"
    )
    [problem] = validate([inv]).problems
    assert problem.key == "ovms_client_container_prefix" and problem.hosts == ("c2",)
    assert "ovms-client-person-detection-N of c2 and c1 would clash" in problem.message
    assert problem.file == str(inv)
    # (a new folder: ansible-core caches the host_vars folders it has looked at in this process)
    fixed = tmp_path / "fixed"
    (fixed / "host_vars").mkdir(parents=True)
    (fixed / "hosts.yml").write_text(inv.read_text())
    (fixed / "host_vars" / "c2.yml").write_text("ovms_client_container_prefix: camera-2\n")
    assert validate([fixed / "hosts.yml"]).ok
