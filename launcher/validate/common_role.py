"""The rules of the `ovms_common` role, imported from the role itself so the launcher applies the very
code the roles run: its filter plugin (the data-folder rule `ovms_unsafe_dir`, the remote-mode rule
`tls_plan`) loaded once per process."""

from __future__ import annotations

import importlib.util
from functools import cache
from types import ModuleType

from launcher.paths import PROJECT_ROOT

COMMON_ROLE = PROJECT_ROOT / "roles" / "ovms_common"


@cache
def filters() -> ModuleType:
    """roles/ovms_common/filter_plugins/ovms_common.py as a module."""
    path = COMMON_ROLE / "filter_plugins" / "ovms_common.py"
    spec = importlib.util.spec_from_file_location("ovms_common_filters", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
