"""Every `ovms_*` / `prechecks_*` variable a role's tasks, templates, defaults and vars read is checked
by that role's first task (ovms.edge.ovms_check): an option of its contract (its own, ovms_common's,
or another role's it declares in `also:` of meta/rules.yml), or a name the role sets itself (defaults,
vars, set_fact, register, loop_var, a task's vars). A variable read but in no contract would reach the
host unchecked (the prechecks' variables did, through `tasks_from: check`)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from launcher.validate import rules
from launcher.validate.specs import ROLES
from testbed.paths import PROJECT_ROOT

pytestmark = [pytest.mark.contract]

ROLES_DIR = PROJECT_ROOT / "roles"
ENGINE = rules.engine()

_NAME = re.compile(r"(?<![.\w'\"])((?:ovms|prechecks)_[a-z0-9_]+)\b")
_JINJA = re.compile(r"\{\{(.*?)\}\}|\{%(.*?)%\}", re.S)
_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")
# task keys whose string is a Jinja expression without braces
_BARE = ("when", "that", "until", "changed_when", "failed_when", "loop", "with_items")

# (role, variable) -> why the role reads it without its check holding it
ALLOWED = {
    (
        "ovms_common",
        "ovms_common_marker_dir",
    ): "a parameter of tasks/marker.yml: each role's include_role vars",
    (
        "ovms_common",
        "ovms_common_marker_role",
    ): "a parameter of tasks/marker.yml: each role's include_role vars",
    (
        "ovms_common",
        "ovms_common_purge_dirs",
    ): "a parameter of tasks/purge.yml: each role's include_role vars",
    ("ovms_server", "ovms_models_version_dirs"): (
        "a fact the ovms_models role sets (set_fact) for the readiness wait, read with default([])"
    ),
    ("ovms_tls_proxy", "ovms_server_container"): (
        "the server role's registered container result in the same play, read only when defined"
    ),
}


def _expression_names(text: str) -> set[str]:
    return set(_NAME.findall(_QUOTED.sub("''", text)))


def _read(node: Any, key: str = "") -> set[str]:
    """The names a task file's data reads: inside {{ }} and {% %}, and the bare expressions of when &c."""
    found: set[str] = set()
    if isinstance(node, dict):
        for k, v in node.items():
            found |= _read(v, str(k))
    elif isinstance(node, list):
        for item in node:
            found |= _read(item, key)
    elif isinstance(node, str):
        if key in _BARE:
            found |= _expression_names(node)
        for match in _JINJA.finditer(node):
            found |= _expression_names(match.group(1) or match.group(2))
    return found


def _set(node: Any) -> set[str]:
    """The names a task file sets: set_fact, register, loop_var, vars of a task or block."""
    found: set[str] = set()
    if isinstance(node, dict):
        for k, v in node.items():
            if k in ("register",) and isinstance(v, str):
                found.add(v)
            elif k == "loop_control" and isinstance(v, dict) and "loop_var" in v:
                found.add(str(v["loop_var"]))
            elif k in ("vars", "ansible.builtin.set_fact", "set_fact") and isinstance(v, dict):
                found |= {str(n) for n in v}
            found |= _set(v)
    elif isinstance(node, list):
        for item in node:
            found |= _set(item)
    return found


def _yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def reads_and_sets(role_dir: Path) -> tuple[dict[str, set[str]], set[str]]:
    """variable -> the files reading it, and the names the role sets itself."""
    reads: dict[str, set[str]] = {}
    sets: set[str] = set()
    for folder in ("defaults", "vars"):
        for path in sorted((role_dir / folder).glob("*.yml")):
            data = _yaml(path) or {}
            sets |= set(data)
            for name in _read(data):
                reads.setdefault(name, set()).add(str(path.relative_to(role_dir.parent)))
    for path in sorted((role_dir / "tasks").glob("*.yml")):
        data = _yaml(path)
        sets |= _set(data)
        for name in _read(data):
            reads.setdefault(name, set()).add(str(path.relative_to(role_dir.parent)))
    for path in sorted((role_dir / "templates").glob("*")):
        for match in _JINJA.finditer(path.read_text(encoding="utf-8")):
            for name in _expression_names(match.group(1) or match.group(2)):
                reads.setdefault(name, set()).add(str(path.relative_to(role_dir.parent)))
    # the options of its other entry points (ovms_common's container, the server's local_access)
    specs = _yaml(role_dir / "meta" / "argument_specs.yml") or {}
    for entry in (specs.get("argument_specs") or {}).values():
        sets |= set((entry or {}).get("options") or {})
    return reads, sets


@pytest.mark.parametrize("role", ROLES)
def test_every_variable_a_role_reads_is_in_its_check(role: str):
    reads, sets = reads_and_sets(ROLES_DIR / role)
    assert reads, role
    # ovms_common's task files run inside the role that includes them: what they register is the role's
    sets |= reads_and_sets(ROLES_DIR / "ovms_common")[1]
    contract = set(ENGINE.contract(str(ROLES_DIR), role).options)
    unchecked = {
        name: sorted(files)
        for name, files in reads.items()
        if name not in contract and name not in sets and (role, name) not in ALLOWED
    }
    assert unchecked == {}, (
        f"roles/{role} reads variables its first task does not check: add them to its argument specs, "
        "or to `also:` of its meta/rules.yml when another role owns them"
    )


def test_the_walk_finds_a_variable_read_but_never_checked(tmp_path: Path):
    role = tmp_path / "demo"
    (role / "tasks").mkdir(parents=True)
    (role / "meta").mkdir()
    (role / "meta" / "argument_specs.yml").write_text(
        "argument_specs: {main: {options: {ovms_demo_a: {}}}}\n"
    )
    (role / "tasks" / "main.yml").write_text(
        "- name: x\n  ansible.builtin.debug:\n    msg: \"{{ ovms_demo_a ~ ovms_demo_b ~ 'ovms_demo_c' }}\"\n"
        "  when: ovms_demo_d | bool\n  register: ovms_demo_e\n"
        '- name: y\n  ovms.edge.ovms_demo_f:\n    v: "{{ ovms_demo_e.ovms_demo_g }}"\n'
    )
    reads, sets = reads_and_sets(role)
    assert set(reads) == {"ovms_demo_a", "ovms_demo_b", "ovms_demo_d", "ovms_demo_e"}
    assert sets == {"ovms_demo_a", "ovms_demo_e"}


def test_the_allow_list_is_still_needed():
    for role, name in ALLOWED:
        reads, _sets = reads_and_sets(ROLES_DIR / role)
        assert name in reads and name not in ENGINE.contract(str(ROLES_DIR), role).options, (role, name)


def _first_task_checks(tasks: Path, file: str) -> str | None:
    """The role the first task of a task file checks (following an import_tasks first task)."""
    first = (_yaml(tasks / file) or [{}])[0]
    if "ansible.builtin.import_tasks" in first:
        return _first_task_checks(tasks, first["ansible.builtin.import_tasks"])
    if "ovms.edge.ovms_check" not in first:
        return None
    return (first["ovms.edge.ovms_check"] or {}).get("role") or tasks.parent.name


@pytest.mark.parametrize("role", [r for r in ROLES if r != "ovms_common"])
def test_every_entry_point_checks_its_role_first(role: str):
    """tasks/main.yml, precheck.yml, status.yml, absent.yml, and the prechecks' check.yml, which every
    role's precheck.yml imports (tasks_from: check): its first task checks the prechecks variables."""
    tasks = ROLES_DIR / role / "tasks"
    files = [
        f
        for f in ("main.yml", "precheck.yml", "status.yml", "absent.yml", "check.yml")
        if (tasks / f).exists()
    ]
    assert "main.yml" in files
    assert {f: _first_task_checks(tasks, f) for f in files} == dict.fromkeys(files, role)
