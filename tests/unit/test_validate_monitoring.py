"""The monitoring group in the launcher: the inventory says which hosts monitor and whose monitoring is
enabled (default: the roles'), the deploy forks for them, and the validation refuses what no Prometheus
could scrape and warns of targets that would be down."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from launcher.commands.deploy import _forks
from launcher.errors import LauncherError
from launcher.inventory import (
    CLIENTS_GROUP,
    MONITORING_GROUP,
    MONITORING_VAR,
    SERVERS_GROUP,
    load_inventory,
    monitoring_default,
    monitoring_enabled,
)
from launcher.validate import validate
from launcher.validate.specs import ROLES, collection_roles, role_of
from testbed.paths import PROJECT_ROOT

pytestmark = pytest.mark.observability

COMMON_DEFAULTS = PROJECT_ROOT / "roles" / "ovms_common" / "defaults" / "main.yml"
LOCALHOST = PROJECT_ROOT / "inventories" / "localhost"
MODELS = [{"name": "person-detection"}]


def write(tmp_path: Path, children: dict[str, Any], every: dict[str, Any] | None = None) -> Path:
    path = tmp_path / "inventory" / "hosts.yml"
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {"all": {"vars": {"ovms_server_models": MODELS, **(every or {})}, "children": children}}
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def hosts(*names: str, **host_vars: Any) -> dict[str, Any]:
    return {
        "hosts": {name: {"ansible_host": f"192.0.2.{10 + i}", **host_vars} for i, name in enumerate(names)}
    }


def remote(tmp_path: Path, every: dict[str, Any] | None = None, **cam: Any) -> Path:
    """srv serves cam over mTLS (another host: remote mode); mon monitors."""
    return write(
        tmp_path,
        {
            SERVERS_GROUP: hosts("srv"),
            CLIENTS_GROUP: {"hosts": {"cam": {"ansible_host": "192.0.2.20", **cam}}},
            MONITORING_GROUP: {"hosts": {"mon": {"ansible_host": "192.0.2.30"}}},
        },
        every,
    )


ON = {MONITORING_VAR: True}


# --- the inventory ------------------------------------------------------------------------------


def test_the_default_is_the_roles(tmp_path):
    role = yaml.safe_load(COMMON_DEFAULTS.read_text(encoding="utf-8"))[MONITORING_VAR]
    assert monitoring_default() is role
    inventory = load_inventory([remote(tmp_path)])
    assert {h.name: h.monitoring_enabled for h in inventory.hosts.values()} == {
        "srv": role,
        "cam": role,
        "mon": role,
    }
    assert [h.name for h in inventory.monitoring] == ["mon"]


def test_each_host_reads_its_own_value_and_extra_vars_win(tmp_path):
    inventory = load_inventory([remote(tmp_path, ON, ovms_monitoring_enabled="no")])
    assert {h.name: h.monitoring_enabled for h in inventory.hosts.values()} == {
        "srv": True,
        "cam": False,
        "mon": True,
    }
    cam = inventory.host("cam")
    assert monitoring_enabled(cam) is False
    assert monitoring_enabled(cam, {MONITORING_VAR: "yes"}) is True  # -e key=value gives text
    with pytest.raises(LauncherError) as caught:
        monitoring_enabled(cam, {MONITORING_VAR: "maybe"})
    assert caught.value.key == f"--extra-vars: {MONITORING_VAR}" and "true or false" in caught.value.message


def test_a_value_that_is_no_boolean_names_the_host_and_the_key(tmp_path):
    with pytest.raises(LauncherError) as caught:
        load_inventory([remote(tmp_path, ovms_monitoring_enabled="sometimes")])
    assert caught.value.key == f"cam: {MONITORING_VAR}" and caught.value.fix
    # a template is resolved as Ansible resolves it
    inventory = load_inventory(
        [remote(tmp_path / "b", {"site_monitored": True, MONITORING_VAR: "{{ site_monitored }}"})]
    )
    assert all(h.monitoring_enabled for h in inventory.hosts.values())


def test_the_fork_count_counts_a_monitoring_only_host(tmp_path):
    inventory = load_inventory([remote(tmp_path)])
    assert sorted(h.name for h in inventory.members()) == ["cam", "mon", "srv"]
    assert _forks(inventory) == 3


# --- the validation ------------------------------------------------------------------------------


def test_a_remote_fleet_with_monitoring_is_valid(tmp_path):
    report = validate([remote(tmp_path, ON)])
    assert report.ok, [p.to_dict() for p in report.problems]
    assert report.warnings == []
    assert report.monitors == ("mon",)
    assert report.to_dict()["monitoring"] == ["mon"]
    assert report.describe().endswith("; monitoring: mon")


def test_the_single_system_localhost_monitors_itself():
    report = validate([LOCALHOST], ON)
    assert report.ok and report.warnings == [], [p.to_dict() for p in [*report.problems, *report.warnings]]
    assert report.monitors == ("localhost",)
    off = validate([LOCALHOST])
    assert off.ok and off.monitors == () and "monitoring" not in off.describe()


def test_a_host_with_monitoring_disabled_is_a_warning(tmp_path):
    inventory = remote(tmp_path, ON, ovms_monitoring_enabled=False)
    report = validate([inventory])
    assert report.ok, [p.to_dict() for p in report.problems]
    [warning] = report.warnings
    assert warning.key == MONITORING_VAR and warning.hosts == ("cam",)
    assert warning.file == str(inventory)  # where cam's value is written
    assert "monitoring disabled" in warning.message and "targets will be down" in warning.message
    assert "mon" in warning.message and "whole inventory" in warning.fix


def test_monitoring_without_a_monitoring_host_is_a_warning(tmp_path):
    inventory = write(tmp_path, {SERVERS_GROUP: hosts("srv"), CLIENTS_GROUP: hosts("cam")}, ON)
    report = validate([inventory])
    assert report.ok
    [warning] = report.warnings
    assert MONITORING_GROUP in warning.message and "nothing collects" in warning.message
    assert warning.hosts == ("cam", "srv") and MONITORING_GROUP in warning.fix


def test_a_single_system_host_monitored_from_another_host_is_refused(tmp_path):
    """box runs server and clients without mTLS: its metrics are on its private network only."""
    box = {"hosts": {"box": {"ansible_host": "192.0.2.40"}}}
    children = {SERVERS_GROUP: box, CLIENTS_GROUP: box, MONITORING_GROUP: hosts("mon")}
    report = validate([write(tmp_path, children, ON)])
    [problem] = report.problems
    assert problem.key == "ovms_tls_enabled" and problem.hosts == ("box", "mon")
    assert "its OVMS server's metrics and its clients' metrics" in problem.message
    assert "Prometheus on mon cannot reach" in problem.message
    assert "ovms_tls_enabled: true on box" in problem.fix
    # monitored from itself: fine; in remote mode: fine
    itself = {SERVERS_GROUP: box, CLIENTS_GROUP: box, MONITORING_GROUP: box}
    assert validate([write(tmp_path / "b", itself, ON)]).ok
    assert validate([write(tmp_path / "c", children, {**ON, "ovms_tls_enabled": True})]).ok
    # with monitoring off nothing is scraped
    assert validate([write(tmp_path / "d", children)]).ok


def test_a_single_system_host_with_monitoring_off_still_has_its_server_scraped(tmp_path):
    """box's monitoring is off (no gateway, a warning), but Prometheus on mon still scrapes its server."""
    box = {"hosts": {"box": {"ansible_host": "192.0.2.40", MONITORING_VAR: False}}}
    children = {SERVERS_GROUP: box, CLIENTS_GROUP: box, MONITORING_GROUP: hosts("mon")}
    report = validate([write(tmp_path, children, ON)])
    [problem] = report.problems
    assert "box runs single-system (no mTLS): its OVMS server's metrics are on its private" in problem.message
    assert [w.hosts for w in report.warnings] == [("box",)]


# --- the roles' registry --------------------------------------------------------------------------


def test_the_roles_are_the_collections_role_folders(tmp_path):
    """The specs and rules of every role are checked, the monitoring role's too, with no list to keep."""
    folders = {p.name for p in (PROJECT_ROOT / "roles").iterdir() if (p / "meta").is_dir()}
    assert ROLES[0] == "ovms_common" and set(ROLES) == folders
    assert role_of("ovms_monitoring_port") in ROLES
    for name, parts in (
        ("ovms_common", ["defaults"]),
        ("a_role", ["tasks", "meta"]),
        ("being_written", ["templates"]),
    ):
        for part in parts:
            (tmp_path / name / part).mkdir(parents=True)
    assert collection_roles(tmp_path) == ("ovms_common", "a_role")
