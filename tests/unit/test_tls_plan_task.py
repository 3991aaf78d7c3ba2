"""The remote (mTLS) plan task of role ovms_common (tasks/tls_plan.yml), run for real: the plan is
computed once per run, and an extra variable `ovms_common_tls` — which Ansible would let take
precedence over the computed fact — stops the run (a plain ansible-playbook or AWX run never passes
`launcher validate`, which refuses it as well)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from testbed.playbook import host_failure, run_playbook

pytestmark = [pytest.mark.contract]

# one server and one client on two names of this machine: the client's plan is remote mode (mTLS)
INVENTORY = {
    "all": {
        "children": {
            "ovms_servers": {"hosts": {"srv": {}}},
            "ovms_clients": {"hosts": {"cam": {}}},
        }
    }
}
SHOW = "PLAN {{ ovms_common_tls | to_json }}"
PLAYS = [
    {
        "name": "Plan",
        "hosts": "srv:cam",
        "gather_facts": False,
        "tasks": [
            {
                "name": "Plan the remote mode",
                "ansible.builtin.import_role": {
                    "name": "ovms.edge.ovms_common",
                    "tasks_from": "tls_plan",
                    "rolespec_validate": False,
                },
            },
            {"name": "Show the plan", "ansible.builtin.debug": {"msg": SHOW}},
        ],
    }
]
NO_TLS = {"servers": [], "clients": {}}


def _plans(output: str) -> list[dict]:
    """The plan each host showed (the debug task's `"msg": "PLAN {...}"` lines)."""
    shown = [line.split('"msg": ', 1)[1] for line in output.splitlines() if '"msg": "PLAN ' in line]
    return [json.loads(json.loads(text)[len("PLAN ") :]) for text in shown]


def test_the_plan_is_computed_and_an_inventory_value_is_replaced(tmp_path: Path):
    inventory = json.loads(json.dumps(INVENTORY))
    inventory["all"]["children"]["ovms_clients"]["hosts"]["cam"] = {"ovms_common_tls": NO_TLS}
    done = run_playbook(tmp_path, PLAYS, inventory)
    assert done.returncode == 0, done.stdout + done.stderr
    plans = _plans(done.stdout)
    assert len(plans) == 2, done.stdout
    for plan in plans:
        assert plan["servers"] == ["srv"] and plan["clients"] == {"cam": "srv"}, plan


def test_an_extra_variable_plan_stops_the_run(tmp_path: Path):
    done = run_playbook(tmp_path, PLAYS, INVENTORY, extra_vars={"ovms_common_tls": NO_TLS})
    assert done.returncode != 0, done.stdout
    failure = host_failure(done.stdout, "srv")
    assert "ovms_common_tls is computed by the roles" in failure["msg"], failure
    assert "Remove ovms_common_tls from the extra variables" in failure["msg"], failure
    assert _plans(done.stdout) == [], "the play went on with the given plan"


def test_an_extra_variable_equal_to_the_plan_changes_nothing(tmp_path: Path):
    plan = {"servers": ["srv"], "clients": {"cam": "srv"}}
    done = run_playbook(tmp_path, PLAYS, INVENTORY, extra_vars={"ovms_common_tls": plan})
    assert done.returncode == 0, done.stdout + done.stderr
    assert _plans(done.stdout) == [plan, plan]
