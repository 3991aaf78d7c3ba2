"""Per-host role variables: known names, types (pydantic), with the file each one comes from."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from launcher.inventory import InventoryHost
from launcher.validate.origins import VarOrigins
from launcher.validate.problems import Problem
from launcher.validate.schema import ROLE_VARS, field_names, known_variables, prefix_of


def templated(value: Any) -> bool:
    """A value Ansible would template at run time: it cannot be checked before the run."""
    if isinstance(value, str):
        return "{{" in value or "{%" in value
    if isinstance(value, Mapping):
        return any(templated(k) or templated(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(templated(v) for v in value)
    return False


@dataclass(frozen=True)
class RoleDefaults:
    """The role variables of `roles/*/defaults/main.yml`: all names, and the values that are not
    templated (a templated default, e.g. "the first server", is computed by the role at run time)."""

    names: frozenset[str] = frozenset()
    values: dict[str, Any] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)

    @classmethod
    def load(cls, roles_dir: Path) -> RoleDefaults:
        names: set[str] = set()
        values: dict[str, Any] = {}
        files: dict[str, str] = {}
        for _, role in ROLE_VARS.values():
            path = roles_dir / role / "defaults" / "main.yml"
            try:
                data = yaml.safe_load(path.read_text(encoding="utf-8"))
            except (OSError, yaml.YAMLError):
                continue
            if not isinstance(data, dict):
                continue
            for key, value in data.items():
                if not isinstance(key, str) or prefix_of(key) is None:
                    continue
                names.add(key)
                files[key] = str(path)
                if not templated(value):
                    values[key] = value
        return cls(frozenset(names), values, files)


@dataclass
class HostVars:
    """One host's checked role variables: a pydantic model per prefix (None when invalid)."""

    host: InventoryHost
    models: dict[str, BaseModel | None] = field(default_factory=dict)
    deferred: set[str] = field(default_factory=set)
    raw: dict[str, Any] = field(default_factory=dict)

    def get(self, prefix: str) -> Any:
        return self.models.get(prefix)


def _loc_key(variable: str, loc: tuple[int | str, ...]) -> str:
    text = variable
    previous: int | str | None = None
    for part in loc[1:]:
        if previous == "source" and part in _SOURCE_TAGS:  # the tagged union's branch, not a key
            previous = part
            continue
        previous = part
        if isinstance(part, int):
            text += f"[{part}]"
        elif isinstance(part, str) and (part.startswith("function-") or "[" in part or part in _TYPE_TAGS):
            continue
        else:
            text += f".{part}"
    return text


_SOURCE_TAGS = {"local", "url", "git"}
_TYPE_TAGS = {"str", "int", "float", "bool", "list[int]", "dict[str,union[str,list[int]]]", "literal['auto']"}


def _message(error: Mapping[str, Any]) -> str:
    kind = error["type"]
    if kind == "missing":
        return "is required but missing"
    if kind == "extra_forbidden":
        return "is not a known key"
    text = str(error["msg"])
    if text.startswith("Value error, "):
        text = text[len("Value error, ") :]
    got = error.get("input")
    if not isinstance(got, dict | list) and kind not in ("missing",) and repr(got) not in text:
        text += f" (got {got!r})"
    return text


def _unknown(variable: str, known: list[str]) -> tuple[str, str]:
    close = difflib.get_close_matches(variable, known, n=3, cutoff=0.6)
    if close:
        return "unknown variable", f"did you mean {' or '.join(close)}?"
    prefix = prefix_of(variable) or ""
    same_role = [k for k in known if k.startswith(prefix)]
    return "unknown variable", f"remove it or use one of: {', '.join(same_role)}"


def _type_fix(variable: str, role: str, defaults: RoleDefaults) -> str:
    text = f"see roles/{role}/defaults/main.yml and its meta/argument_specs.yml"
    if variable in defaults.values:
        shown = yaml.safe_dump({variable: defaults.values[variable]}, default_flow_style=True).strip()
        text += f"; the default is {shown.strip('{}')}"
    return text


def check_host(
    host: InventoryHost,
    extravars: Mapping[str, Any],
    defaults: RoleDefaults,
    origins: VarOrigins,
) -> tuple[HostVars, list[Problem]]:
    """Unknown names and type errors of one host's `ovms_*` role variables."""
    problems: list[Problem] = []
    known = sorted(set(known_variables()) | defaults.names)
    merged: dict[str, Any] = {k: v for k, v in defaults.values.items()}
    from_defaults = set(merged)
    for source in (host.vars, extravars):
        for key, value in source.items():
            if isinstance(key, str) and prefix_of(key) is not None:
                merged[key] = value
                from_defaults.discard(key)

    def where(key: str) -> str:
        if key in from_defaults:
            return defaults.files[key]
        return origins.find(key, host.name, host.groups)

    result = HostVars(host=host, raw=merged)
    for key in sorted(merged):
        if key not in known:
            message, fix = _unknown(key, known)
            problems.append(Problem(where(key), key, message, fix, (host.name,)))
    for prefix, (model, _role) in ROLE_VARS.items():
        data: dict[str, Any] = {}
        names = field_names(model)
        for key, value in merged.items():
            name = key[len(prefix) :]
            if not key.startswith(prefix) or name not in names:
                continue
            if templated(value):
                result.deferred.add(key)
                continue
            data[name] = value
        try:
            result.models[prefix] = model.model_validate(data)
        except ValidationError as exc:
            result.models[prefix] = None
            for error in exc.errors():
                variable = prefix + str(error["loc"][0]) if error["loc"] else prefix
                problems.append(
                    Problem(
                        where(variable),
                        _loc_key(variable, tuple(error["loc"])),
                        _message(error),
                        _type_fix(variable, _role, defaults),
                        (host.name,),
                    )
                )
    return result, problems
