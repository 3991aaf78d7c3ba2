"""An include or import of a role entry point that turns Ansible's argument-spec validation off
(`rolespec_validate: false`, one task result less per host and play: bench/notes.md) must leave the
check to the entry point's own first task: ovms.edge.ovms_check, which applies the role's main
options (with ovms_common's) and its rules. So the first task must be that check, and the entry
point may declare no option the main entry point lacks. ovms_common's `container` entry point checks
its specs in its one task instead (filter ovms_checked_containers)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from ansible.module_utils.parsing.convert_bool import boolean

ROOT = Path(__file__).resolve().parents[2]
ROLE_ACTIONS = (
    "ansible.builtin.import_role", "ansible.builtin.include_role", "ansible.legacy.import_role",
    "ansible.legacy.include_role", "import_role", "include_role",
)  # fmt: skip
CHECK = "ovms.edge.ovms_check"
CONTAINER_ENTRY = ("ovms_common", "container")
CONTAINER_CHECK = "ovms.edge.ovms_checked_containers"


def _tasks(data: Any) -> list[dict[str, Any]]:
    """Every task mapping of a playbook or task file, blocks and plays included."""
    found: list[dict[str, Any]] = []
    items = data if isinstance(data, list) else []
    for item in items:
        if not isinstance(item, dict):
            continue
        found.append(item)
        for key in ("tasks", "pre_tasks", "post_tasks", "handlers", "block", "rescue", "always"):
            found += _tasks(item.get(key))
    return found


def _skips() -> list[tuple[str, str, str]]:
    """(file, role, entry point) of each role include/import with rolespec_validate false."""
    files = sorted((ROOT / "playbooks").glob("*.yml")) + sorted((ROOT / "roles").glob("*/tasks/*.yml"))
    skips = []
    for path in files:
        for task in _tasks(yaml.safe_load(path.read_text(encoding="utf-8"))):
            for action in ROLE_ACTIONS:
                args = task.get(action)
                if isinstance(args, dict) and not boolean(args.get("rolespec_validate", True), strict=False):
                    role = str(args["name"]).rsplit(".", 1)[-1]
                    entry = str(args.get("tasks_from") or "main").removesuffix(".yml")
                    skips.append((str(path.relative_to(ROOT)), role, entry))
    return skips


SKIPS = _skips()


def _entry_points(role: str) -> set[str]:
    specs_file = ROOT / "roles" / role / "meta" / "argument_specs.yml"
    return set(yaml.safe_load(specs_file.read_text(encoding="utf-8"))["argument_specs"])


# An entry point without specs of its own (marker, purge, tls_plan, prechecks' check, the roles'
# precheck, wait, verify, absent...) is validated by nothing either way: ansible-core adds no task for
# it, and `rolespec_validate: false` only spares the run loading meta/argument_specs.yml at every
# include (bench/notes.md, seventh pass). Only the skips of an entry point with specs are guarded.
GUARDED = [s for s in SKIPS if s[1:] != CONTAINER_ENTRY and s[2] in _entry_points(s[1])]


def test_the_deploy_skips_the_monitoring_entry_points() -> None:
    # the guard below must have something to guard: the playbooks turn the duplicate validation off
    skipped = {(role, entry) for _where, role, entry in GUARDED}
    assert {("ovms_monitoring", "precheck"), ("ovms_monitoring", "exporters")} <= skipped


def test_the_container_entry_point_checks_its_specs_in_its_task() -> None:
    assert CONTAINER_ENTRY in {(role, entry) for _where, role, entry in SKIPS}
    file = ROOT / "roles" / "ovms_common" / "tasks" / "container.yml"
    tasks = yaml.safe_load(file.read_text(encoding="utf-8"))
    loops = [str(task.get("loop", "")) for task in tasks]
    assert len(tasks) == 1 and f"ovms_common_containers | {CONTAINER_CHECK}" in loops[0], (
        "roles/ovms_common/tasks/container.yml is imported with rolespec_validate false: its one task must "
        f"loop over `ovms_common_containers | {CONTAINER_CHECK}`, which checks the specs; found loops {loops}"
    )


@pytest.mark.parametrize(("where", "role", "entry"), GUARDED)
def test_skipped_validation_is_done_by_the_entry_points_first_task(where: str, role: str, entry: str) -> None:
    role_dir = ROOT / "roles" / role
    first = (yaml.safe_load((role_dir / "tasks" / f"{entry}.yml").read_text(encoding="utf-8")) or [{}])[0]
    assert CHECK in first and not (first[CHECK] or {}).get("role"), (
        f"{where}: rolespec_validate is false for roles/{role} entry point {entry}, whose first task is not "
        f"{CHECK} of the role itself: turn the validation back on or make that check the first task"
    )
    specs_file = role_dir / "meta" / "argument_specs.yml"
    specs = yaml.safe_load(specs_file.read_text(encoding="utf-8"))["argument_specs"]
    main = set((specs.get("main") or {}).get("options") or {})
    own = set((specs.get(entry) or {}).get("options") or {})
    assert own <= main, (
        f"{where}: roles/{role} entry point {entry} declares {sorted(own - main)}, which the role's check "
        "(main options only) does not apply: add them to the main entry point or turn rolespec_validate "
        "back on"
    )
