"""The container specs roles/ovms_common/tasks/container.yml runs are checked in its task, by filter
ovms_checked_containers, against the `container` entry point of roles/ovms_common/meta/
argument_specs.yml (the roles import the file with rolespec_validate: false)."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from testbed.plugins import load_plugin

COMMON = load_plugin("plugins/filter/ovms_common.py")


def _spec(**changes: object) -> dict[str, object]:
    spec: dict[str, object] = {
        "name": "ovms-client-demo-1",
        "image": "ovms-launcher/client:dev",
        "role": "client",
        "user": "5002:5002",
        "network_mode": "ovms-net",
        "mounts": [{"type": "bind", "source": "/srv/demo", "target": "/profile", "read_only": True}],
    }
    spec.update(changes)
    return {k: v for k, v in spec.items() if v is not None}


def test_specs_as_specified_pass_unchanged() -> None:
    specs = [_spec(), _spec(name="ovms-client-demo-2", detach=False, cleanup=True)]
    assert COMMON.ovms_checked_containers(specs) == specs


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        (_spec(user=None), "missing required arguments: user"),
        (_spec(networkmode="none"), "networkmode"),
        (_spec(mounts=[{"type": "link", "target": "/x"}]), "type must be one of: bind, volume"),
        (_spec(mounts=[{"type": "bind", "source": "/x"}]), "missing required arguments: target"),
    ],
)
def test_a_spec_the_entry_point_refuses_fails_the_task_naming_the_container(spec, words) -> None:
    with pytest.raises(AnsibleFilterError) as raised:
        COMMON.ovms_checked_containers([_spec(name="ovms-server"), spec])
    message = str(raised.value)
    assert words in message and "ovms-server, ovms-client-demo-1" in message, message
    assert "`container` entry point of ovms_common/meta/argument_specs.yml" in message
