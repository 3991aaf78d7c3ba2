"""Each role's README lists every variable with its default, copied from the role's own contract by
scripts/role_docs.py: the table is never a second place to edit, so it must match."""

from __future__ import annotations

import subprocess
import sys

import yaml

from testbed.paths import PROJECT_ROOT

SCRIPT = PROJECT_ROOT / "scripts" / "role_docs.py"


def test_the_role_readmes_list_the_variables_of_their_defaults():
    run = subprocess.run(
        [sys.executable, str(SCRIPT), "--check"], capture_output=True, text=True, check=False
    )
    assert run.returncode == 0, run.stderr


def test_every_default_is_in_its_readme():
    for defaults in sorted(PROJECT_ROOT.glob("roles/*/defaults/main.yml")):
        readme = (defaults.parents[1] / "README.md").read_text(encoding="utf-8")
        for name in yaml.safe_load(defaults.read_text(encoding="utf-8")) or {}:
            assert f"| `{name}` |" in readme, f"{name} is missing from {defaults.parents[1].name}/README.md"
