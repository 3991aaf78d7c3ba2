"""The rules of the roles, imported from the roles themselves so the launcher applies the very code the
roles run: a role's filter plugin (ovms_common's data-folder rule `ovms_unsafe_dir`, remote-mode rule
`tls_plan`, advertised-address rule `advertised_address`, a client's default server `default_server`
and the files a host receives `pki_host_files`; ovms_client's camera-credentials rule) loaded once
per process. The plain values of ovms_common's defaults are read by launcher/common_defaults.py."""

from __future__ import annotations

import importlib.util
from functools import cache
from types import ModuleType

from launcher.content import content


def filters() -> ModuleType:
    """plugins/filter/ovms_common.py as a module."""
    return role_filters("ovms_common")


@cache
def role_filters(role: str) -> ModuleType:
    """The collection's plugins/filter/<role>.py (the filters of that role) as a module."""
    path = content().root / "plugins" / "filter" / f"{role}.py"
    spec = importlib.util.spec_from_file_location(f"{role}_filters", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
