"""Issue 21 (review): the rule engine fails closed on a role's contract files. A role whose
meta/argument_specs.yml or meta/rules.yml is missing, empty, or holds no `argument_specs` / `rules`
mapping (or lacks the entry point checked) is an error naming the file, not a check that passes every
value (plugins/module_utils/ovms_rules.py: role_contract, load_rules, load_options)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from launcher.validate import rules
from testbed.paths import PROJECT_ROOT

pytestmark = [pytest.mark.contract]

ENGINE = rules.engine()
ROLES_DIR = PROJECT_ROOT / "roles"


def _roles(tmp_path: Path) -> Path:
    """A copy of the roles' meta folders (all the engine reads)."""
    roles = tmp_path / "roles"
    for meta in ROLES_DIR.glob("*/meta"):
        shutil.copytree(meta, roles / meta.parent.name / "meta")
    return roles


def test_the_shipped_roles_have_their_contract(tmp_path):
    roles = _roles(tmp_path)
    options, ruleset = ENGINE.role_contract(str(roles), "ovms_client")
    assert "ovms_client_data_dir" in options and "ovms_common_label" in options
    # a bad value is a finding, as with the shipped files
    values = {"ovms_client_data_dir": "/etc", "ovms_common_system_dirs": ["/", "/etc"]}
    findings = ENGINE.check(options, ruleset, values)
    assert [f.key for f in findings] == ["ovms_client_data_dir"]


@pytest.mark.parametrize("role", ["ovms_common", "ovms_client"])
@pytest.mark.parametrize("name", ["rules.yml", "argument_specs.yml"])
@pytest.mark.parametrize(
    ("state", "words"),
    [
        ("missing", "is missing"),
        ("empty", "is empty"),
        ("comment-only", "is empty"),
        ("no-mapping", "holds no `{key}` mapping"),
        ("empty-mapping", "holds no `{key}` mapping"),
    ],
)
def test_a_missing_or_empty_contract_file_fails_closed(tmp_path, role, name, state, words):
    roles = _roles(tmp_path)
    file = roles / role / "meta" / name
    key = "rules" if name == "rules.yml" else "argument_specs"
    if state == "missing":
        file.unlink()
    elif state == "empty":
        file.write_text("", encoding="utf-8")
    elif state == "comment-only":
        file.write_text("---\n# nothing here\n", encoding="utf-8")
    elif state == "no-mapping":
        file.write_text("something: else\n", encoding="utf-8")
    else:
        file.write_text(f"{key}: {{}}\n", encoding="utf-8")
    with pytest.raises(ValueError) as raised:
        ENGINE.role_contract(str(roles), "ovms_client")
    message = str(raised.value)
    assert message.startswith(f"{file} {words.format(key=key)}: "), message
    assert "would pass any value unchecked; restore the file" in message


def test_a_missing_entry_point_fails_closed(tmp_path):
    roles = _roles(tmp_path)
    file = roles / "ovms_client" / "meta" / "argument_specs.yml"
    file.write_text("argument_specs:\n  other:\n    options: {}\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"argument_specs\.yml has no entry point 'main': restore"):
        ENGINE.role_contract(str(roles), "ovms_client")
