"""The client role's device check of a profile (roles/ovms_client/tasks/devices.yml, its last task: the
action ovms_client_devices): each failure with its own message; the task run as written by
ansible-playbook on a reading of a device this machine lacks, of no device, and of a device path the
filter ovms_client_checked refuses."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from client.__main__ import reported_outputs
from client.profile import OutputsSpec
from testbed.paths import PROJECT_ROOT
from testbed.playbook import host_failure, run_playbook, task_results
from testbed.plugins import load_plugin

# the client's check's `outputs` of a profile with the default results files
OUTPUTS = reported_outputs(OutputsSpec())

DEVICES = PROJECT_ROOT / "roles" / "ovms_client" / "tasks" / "devices.yml"
ACTION = load_plugin("plugins/action/ovms_client_devices.py")
ABSENT = "/dev/video87"


def _check(tmp_path: Path, devices: list[str]):
    task = yaml.safe_load(DEVICES.read_text(encoding="utf-8"))[-1]
    assert "ovms.edge.ovms_client_devices" in task, task
    reading = {
        "name": "aisle-3",
        "devices": devices,
        "inputs": [],
        "stages": [{"name": "detect"}],
        "outputs": OUTPUTS,
    }
    play = {
        "hosts": "localhost",
        "gather_facts": False,
        "vars": {
            "ovms_client_profile": {"name": "aisle-3"},
            "ovms_client_devices_output": json.dumps(reading),
        },
        "tasks": [task, {"ansible.builtin.debug": {"var": "ovms_client_profile_devices"}}],
    }
    return run_playbook(tmp_path, play)


@pytest.mark.parametrize(
    ("missing", "root_group", "expected", "not_expected"),
    [
        (["/dev/video2"], [], "reads video device /dev/video2, which this host lacks", "gid 0"),
        ([], ["/dev/video1"], "reads video device /dev/video1, whose group is root (gid 0)", "lacks"),
        (["/dev/video2"], ["/dev/video1"], "/dev/video2, which this host lacks", "/dev/video1"),
    ],
)
def test_each_failure_names_its_device_and_its_fix(missing, root_group, expected, not_expected):
    found = {"devices": [], "groups": [], "missing": missing, "root_group": root_group}
    message = ACTION.problem("store-12", "aisle-3", found)
    assert message.startswith("host store-12: profile aisle-3 ") and expected in message, message
    assert not_expected not in message, message
    assert "no client container of this host was started or changed" in message


def test_the_task_refuses_a_device_this_host_lacks(tmp_path):
    if Path(ABSENT).exists() or Path(ABSENT).is_symlink():
        pytest.skip(f"{ABSENT} exists on this machine")
    run = _check(tmp_path, [ABSENT])
    assert run.returncode != 0, run.stdout[-2000:]
    failure = host_failure(run.stdout, "localhost")
    expected = f"host localhost: profile aisle-3 reads video device {ABSENT}, which this host lacks"
    assert failure["msg"].startswith(expected), failure["msg"]
    assert failure["missing"] == [ABSENT] and failure["devices"] == [], failure


def test_a_profile_without_devices_passes_with_its_stages(tmp_path):
    run = _check(tmp_path, [])
    assert run.returncode == 0, run.stdout[-2000:]
    assert '"profile": "aisle-3"' in run.stdout and '"name": "detect"' in run.stdout, run.stdout[-2000:]


def test_a_reading_the_filter_refuses_never_reaches_the_host(tmp_path):
    run = _check(tmp_path, ["/dev/tty"])
    assert run.returncode != 0
    assert "profile aisle-3: the client's check gave devices ['/dev/tty']" in run.stdout, run.stdout[-2000:]


def test_the_reading_s_outputs_reach_the_record_verify_waits_on_and_the_labels(tmp_path):
    """devices.yml's action returns the check's `outputs`; profile.yml's record keeps them in
    ovms_client_prepared, from which verify.yml waits and each container's stats-file label comes."""
    [record] = [
        t
        for t in yaml.safe_load((DEVICES.parent / "profile.yml").read_text(encoding="utf-8"))
        if t["name"].startswith("Record what it needs")
    ]
    outputs = {"detections": False, "detections_file": "d.jsonl", "stats_file": "pace.jsonl"}
    reading = {"name": "aisle-3", "devices": [], "inputs": [], "stages": [], "outputs": outputs}
    play = {
        "hosts": "localhost",
        "gather_facts": False,
        "vars": {
            "ovms_client_profile": {"name": "aisle-3"},
            "ovms_client_profile_source": {"type": "local"},
            "ovms_client_profile_copy": {"changed": False},
            "ovms_client_devices_output": "INFO read\n" + json.dumps(reading),
            "ovms_client_profiles": [{"name": "aisle-3", "instances": 2}],
        },
        "tasks": [
            yaml.safe_load(DEVICES.read_text(encoding="utf-8"))[-1],
            record,
            {
                "name": "Show what verify and the container specs get",
                "vars": {"prepared": "{{ ovms_client_prepared }}"},
                "ansible.builtin.debug": {
                    "msg": {
                        "wait": "{{ ovms_client_profiles | ovms.edge.ovms_client_verify_files(prepared) }}",
                        "labels": "{{ {} | ovms.edge.ovms_client_instance_specs(ovms_client_profiles, 'c', "
                        "'/d', prepared, []) | map(attribute='labels') | list }}",
                    }
                },
            },
        ],
    }
    run = run_playbook(tmp_path, play, json_callback=True)
    assert run.returncode == 0, run.stdout[-3000:]
    results = task_results(run)
    assert (
        results["Record what it needs, profile aisle-3"]["ansible_facts"]["ovms_client_prepared"]["aisle-3"][
            "outputs"
        ]
        == outputs
    )
    shown = results["Show what verify and the container specs get"]["msg"]
    assert shown["wait"] == [
        {"instance": "aisle-3-1", "file": "pace.jsonl"},
        {"instance": "aisle-3-2", "file": "pace.jsonl"},
    ]
    assert [labels["ovms-launcher.stats-file"] for labels in shown["labels"]] == ["pace.jsonl", "pace.jsonl"]
