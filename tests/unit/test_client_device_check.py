"""The client role's device check of a profile (roles/ovms_client/tasks/devices.yml, its last task):
one assert for both conditions, each failure with its own message, run as written by ansible-playbook."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from testbed.paths import PROJECT_ROOT
from testbed.playbook import host_failure, run_playbook

DEVICES = PROJECT_ROOT / "roles" / "ovms_client" / "tasks" / "devices.yml"


def _check(tmp_path: Path, missing: list[str], root_group: list[str]):
    task = yaml.safe_load(DEVICES.read_text(encoding="utf-8"))[-1]
    assert "ansible.builtin.assert" in task, task
    play = {
        "hosts": "localhost",
        "gather_facts": False,
        "vars": {
            "ovms_client_profile": {"name": "aisle-3"},
            "ovms_client_profile_devices": {"missing": missing, "root_group": root_group},
        },
        "tasks": [task],
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
def test_each_failure_names_its_device_and_its_fix(tmp_path, missing, root_group, expected, not_expected):
    run = _check(tmp_path, missing, root_group)
    assert run.returncode != 0, run.stdout[-2000:]
    message = host_failure(run.stdout, "localhost")["msg"]
    assert message.startswith("host localhost: profile aisle-3 ") and expected in message, message
    assert not_expected not in message, message


def test_a_host_with_every_device_in_its_own_group_passes(tmp_path):
    run = _check(tmp_path, [], [])
    assert run.returncode == 0, run.stdout[-2000:]
