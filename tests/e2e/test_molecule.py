"""Every role's Molecule scenario (syntax, converge, idempotence, verify) on the real Docker engine."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from launcher.runner.strategy import strategy_envvars
from testbed.paths import PROJECT_ROOT

pytestmark = [pytest.mark.docker, pytest.mark.slow]

ROLES = sorted(p.parents[2].name for p in (PROJECT_ROOT / "roles").glob("*/molecule/default/molecule.yml"))


def test_every_role_has_a_scenario():
    roles = sorted(p.name for p in (PROJECT_ROOT / "roles").iterdir() if (p / "tasks").is_dir())
    assert roles == ROLES


@pytest.mark.parametrize("role", ROLES)
def test_molecule_scenario(role, tmp_path):
    bin_dir = str(Path(sys.executable).parent)
    env = {
        **os.environ,
        "PATH": os.pathsep.join([bin_dir, os.environ.get("PATH", "")]),
        "ANSIBLE_FORCE_COLOR": "0",
        "NO_COLOR": "1",
        "MOLECULE_EPHEMERAL_DIRECTORY": str(tmp_path / "ephemeral"),
        # the strategy the launcher deploys the roles with (about half the time of Ansible's linear;
        # the plain ansible-playbook path keeps linear in tests/multihost/test_collection_playbook.py)
        **strategy_envvars(),
    }
    proc = subprocess.run(
        [str(Path(bin_dir) / "molecule"), "test"],
        cwd=PROJECT_ROOT / "roles" / role,
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-6000:]
    for step in ("converge", "idempotence", "verify"):
        assert f"{step}: Executed: Successful" in output, f"{step} did not run:\n{output[-3000:]}"
