"""Lookup ovms_models_prepared: the model versions prepared on the controller, read in one pass."""

from __future__ import annotations

DOCUMENTATION = r"""
name: ovms_models_prepared
short_description: Model versions prepared on the controller by `launcher models prepare`
description:
  - "For each model entry of the terms (entries of ovms_server_models; C(source=manual) ones are
    skipped), every version folder of O(cache_dir)/<name>/ with the text of its checksums.sha256."
  - "A model without any prepared version is returned once with C(version) null, so the caller can
    stop with its name."
options:
  _terms:
    description: Model entries ({name, source}).
    required: true
  cache_dir:
    description: The controller cache of prepared models.
    type: path
    required: true
"""

EXAMPLES = r"""
- name: The versions prepared on the controller for the server's models
  ansible.builtin.set_fact:
    prepared: >-
      {{ query('ovms.edge.ovms_models_prepared', ovms_server_models,
               cache_dir=lookup('ansible.builtin.env', 'OVMS_LAUNCHER_CACHE') ~ '/models') }}
"""

RETURN = r"""
_raw:
  description: One entry per model entry of the terms, with the versions found (see the description).
  type: list
  elements: dict
"""

import re
from pathlib import Path
from typing import Any

from ansible.plugins.lookup import LookupBase

_VERSION = re.compile(r"^[1-9][0-9]*\Z")


class LookupModule(LookupBase):
    def run(self, terms: list[Any], variables: dict | None = None, **kwargs: Any) -> list[dict]:
        self.set_options(var_options=variables, direct=kwargs)
        cache = Path(self.get_option("cache_dir"))
        entries = terms[0] if len(terms) == 1 and isinstance(terms[0], list) else terms
        prepared: list[dict] = []
        for entry in entries:
            if (entry.get("source") or "manifest") == "manual":
                continue
            name = str(entry["name"])
            base = cache / name
            versions = sorted(
                int(p.name)
                for p in (base.iterdir() if base.is_dir() else [])
                if p.is_dir() and _VERSION.match(p.name)
            )
            if not versions:
                prepared.append({"name": name, "version": None, "src": str(base), "sums": ""})
            for version in versions:
                sums = base / str(version) / "checksums.sha256"
                text = sums.read_text(encoding="utf-8") if sums.is_file() else ""
                prepared.append(
                    {"name": name, "version": version, "src": str(base / str(version)), "sums": text}
                )
        return prepared
