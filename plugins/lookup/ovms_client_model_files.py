"""Lookup ovms_client_model_files: the model files the client profiles read, found in the controller
cache of prepared models."""

from __future__ import annotations

DOCUMENTATION = r"""
name: ovms_client_model_files
short_description: Files prepared beside the models (a recogniser's characters) that client profiles read
description:
  - "For each need of the terms ({profile, stage, model, file}: filter ovms_client_model_needs), every
    version folder O(cache_dir)/<model>/<version>/ holding <file> as a regular file: one entry
    {model, version, file, src} per file (a file several profiles read is listed once)."
  - "Links are never followed: a version folder or a file that is a link does not count, nor does
    anything that is not a regular file."
  - "A need no prepared version has is returned as {profile, stage, model, file, version: null,
    versions} (versions: the prepared version folders of the model), so the caller stops naming it."
options:
  _terms:
    description: Needs ({profile, stage, model, file}).
    required: true
  cache_dir:
    description: The controller cache of prepared models (<model>/<version>/...).
    type: path
    required: true
"""

EXAMPLES = r"""
- name: The files prepared beside the models that the client profiles read
  ansible.builtin.set_fact:
    model_files: >-
      {{ query('ovms.edge.ovms_client_model_files',
               ovms_client_prepared | ovms.edge.ovms_client_model_needs(ovms_client_profiles),
               cache_dir=lookup('ansible.builtin.env', 'OVMS_LAUNCHER_CACHE') ~ '/models') }}
"""

RETURN = r"""
_raw:
  description: One {model, version, file, src} per file found, or a need with C(version) null and the
    prepared C(versions) of its model when no version holds the file.
  type: list
  elements: dict
"""

import re
import stat
from pathlib import Path
from typing import Any

from ansible.errors import AnsibleLookupError
from ansible.plugins.lookup import LookupBase

_VERSION = re.compile(r"^[1-9][0-9]*\Z")
# what ovms_client_model_needs lets through; checked again here, as these become controller paths
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*\Z")


def _is(path: Path, test: Any) -> bool:
    """lstat-based: a link is never what it points to."""
    try:
        return bool(test(path.lstat().st_mode))
    except OSError:
        return False


def _versions(base: Path) -> list[int]:
    if not _is(base, stat.S_ISDIR):
        return []
    return sorted(int(p.name) for p in base.iterdir() if _VERSION.match(p.name) and _is(p, stat.S_ISDIR))


def model_files(needs: list[dict], cache: Path) -> list[dict]:
    """The entries the lookup returns for these needs (see DOCUMENTATION)."""
    found: dict[tuple[str, int, str], dict] = {}
    missing: list[dict] = []
    for need in needs:
        model, name = str(need["model"]), str(need["file"])
        if not _NAME.match(model) or not _NAME.match(name):
            raise AnsibleLookupError(f"ovms_client_model_files: unsafe model or file name {model!r}/{name!r}")
        versions = _versions(cache / model)
        have = [v for v in versions if _is(cache / model / str(v) / name, stat.S_ISREG)]
        for version in have:
            src = cache / model / str(version) / name
            found.setdefault(
                (model, version, name), {"model": model, "version": version, "file": name, "src": str(src)}
            )
        if not have:
            missing.append({**need, "model": model, "file": name, "version": None, "versions": versions})
    return [found[key] for key in sorted(found)] + missing


class LookupModule(LookupBase):
    def run(self, terms: list[Any], variables: dict | None = None, **kwargs: Any) -> list[dict]:
        self.set_options(var_options=variables, direct=kwargs)
        cache = Path(self.get_option("cache_dir"))
        if not cache.is_absolute():
            raise AnsibleLookupError(
                f"ovms_client_model_files: cache_dir {str(cache)!r} is not an absolute path"
            )
        needs = terms[0] if len(terms) == 1 and isinstance(terms[0], list) else terms
        return model_files([dict(n) for n in needs], cache)
