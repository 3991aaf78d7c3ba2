"""A file of the collection (a filter, lookup, module or module_utils plugin, a guard script) loaded as a
Python module, as the unit tests call its functions directly: by its path, without the collection
being installed and without `ansible_collections.ovms.edge…` import names."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from testbed.paths import PROJECT_ROOT


def load_plugin(path: str | Path, name: str | None = None, *, register: bool = False) -> ModuleType:
    """The module of the file `path` (relative to the checkout, or absolute), run once.

    `name` is the module's `__name__` (default `plugin_<file stem>`); each call makes a new module
    object, so two callers of one file never share its state. `register=True` also puts it in
    `sys.modules` under that name before it runs, for a file whose dataclasses (or pickling, or
    `typing.get_type_hints`) look their module up there; the entry stays for the process.
    """
    path = PROJECT_ROOT / path  # an absolute `path` stands as it is
    spec = importlib.util.spec_from_file_location(name or f"plugin_{path.stem}", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"{path} cannot be loaded as a Python module")
    module = importlib.util.module_from_spec(spec)
    if register:
        sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module
