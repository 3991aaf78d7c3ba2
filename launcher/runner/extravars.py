"""`--extra-vars/-e` as ansible-playbook reads them: `key=value ...`, `@file.yml` or inline JSON/YAML."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from launcher.errors import LauncherError

KEY = "--extra-vars"


def _from_file(spec: str) -> dict[str, Any]:
    path = Path(spec[1:]).expanduser()
    if not spec[1:]:
        raise LauncherError("`@` must be followed by a file name", key=KEY, fix="write -e @vars.yml")
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise LauncherError(
            f"cannot read the extra-vars file: {exc.strerror}", file=path, key=KEY, fix="check the path"
        ) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise LauncherError(f"not valid YAML or JSON: {exc}", file=path, key=KEY) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise LauncherError(
            f"must hold a mapping of variables, got {type(data).__name__}",
            file=path,
            key=KEY,
            fix="write `name: value` lines",
        )
    return data


def _inline(spec: str) -> dict[str, Any]:
    try:
        data = yaml.safe_load(spec)
    except yaml.YAMLError as exc:
        raise LauncherError(f"not valid JSON: {exc}", key=KEY, fix="quote it: -e '{\"name\": 1}'") from None
    if not isinstance(data, dict):
        raise LauncherError(f"must be a JSON object, got {spec!r}", key=KEY, fix="write -e '{\"name\": 1}'")
    return data


def _key_values(spec: str) -> dict[str, Any]:
    from ansible.errors import AnsibleError
    from ansible.parsing.splitter import parse_kv

    try:
        pairs = parse_kv(spec)
    except AnsibleError as exc:
        raise LauncherError(f"cannot parse {spec!r}: {exc}", key=KEY, fix="write -e name=value") from None
    raw = pairs.pop("_raw_params", None)
    if raw:
        raise LauncherError(
            f"{raw!r} is not name=value", key=KEY, fix="write -e name=value, -e @file.yml or -e '{json}'"
        )
    return {str(k): str.__str__(v) for k, v in pairs.items()}


def parse_extra_vars(specs: Iterable[str]) -> dict[str, Any]:
    """Merge the given `-e` values in order (later ones win, top-level keys replaced like Ansible)."""
    merged: dict[str, Any] = {}
    for spec in specs:
        text = spec.strip()
        if not text:
            continue
        if text.startswith("@"):
            merged.update(_from_file(text))
        elif text.startswith(("{", "[")):
            merged.update(_inline(text))
        else:
            merged.update(_key_values(text))
    for key in merged:
        if not isinstance(key, str) or not key.isidentifier():
            raise LauncherError(f"{key!r} is not a valid variable name", key=KEY)
    return merged
