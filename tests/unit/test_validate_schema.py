"""The validation schema mirrors the roles: every role variable is known, defaults pass the schema."""

from __future__ import annotations

import pytest
import yaml

from launcher.paths import PROJECT_ROOT
from launcher.validate.schema import ROLE_VARS, field_names
from launcher.validate.variables import templated

ROLES = PROJECT_ROOT / "roles"


def _role_defaults(role: str) -> dict:
    path = ROLES / role / "defaults" / "main.yml"
    if not path.is_file():
        pytest.skip(f"{path} not written yet")
    return yaml.safe_load(path.read_text(encoding="utf-8")) or {}


@pytest.mark.parametrize("prefix", sorted(ROLE_VARS))
def test_schema_and_role_defaults_name_the_same_variables(prefix):
    model, role = ROLE_VARS[prefix]
    in_role = {k[len(prefix) :] for k in _role_defaults(role) if k.startswith(prefix)}
    in_schema = set(field_names(model))
    assert in_role - in_schema == set(), f"roles/{role} has variables the launcher does not validate"
    assert in_schema - in_role == set(), f"the launcher validates variables roles/{role} does not define"


@pytest.mark.parametrize("prefix", sorted(ROLE_VARS))
def test_role_defaults_pass_the_schema(prefix):
    model, role = ROLE_VARS[prefix]
    data = {
        k[len(prefix) :]: v
        for k, v in _role_defaults(role).items()
        if k.startswith(prefix) and not templated(v)
    }
    model.model_validate(data)


def test_schema_defaults_match_role_defaults():
    for prefix, (model, role) in ROLE_VARS.items():
        path = ROLES / role / "defaults" / "main.yml"
        if not path.is_file():
            continue
        defaults = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        built = model.model_validate({}).model_dump(by_alias=True)
        for key, value in defaults.items():
            name = key[len(prefix) :]
            # None: the schema has no default of its own, the role's (merged in first) is the one
            if key.startswith(prefix) and not templated(value) and built.get(name) is not None:
                assert built[name] == value, f"{key}: schema default {built[name]!r}, role default {value!r}"
