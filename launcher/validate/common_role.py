"""The rules of the roles, imported from the roles themselves so the launcher applies the very code the
roles run: a role's filter plugin (ovms_common's data-folder rule `ovms_unsafe_dir` and remote-mode
rule `tls_plan`, ovms_client's camera-credentials rule) loaded once per process."""

from __future__ import annotations

import importlib.util
from functools import cache
from types import ModuleType

from launcher.paths import PROJECT_ROOT

COMMON_ROLE = PROJECT_ROOT / "roles" / "ovms_common"


def filters() -> ModuleType:
    """roles/ovms_common/filter_plugins/ovms_common.py as a module."""
    return role_filters("ovms_common")


@cache
def role_filters(role: str) -> ModuleType:
    """roles/<role>/filter_plugins/<role>.py as a module."""
    path = COMMON_ROLE.parent / role / "filter_plugins" / f"{role}.py"
    spec = importlib.util.spec_from_file_location(f"{role}_filters", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
