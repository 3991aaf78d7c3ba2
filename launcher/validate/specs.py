"""The roles' variable contract, read from the roles themselves.

Each role's `meta/argument_specs.yml` (entry point `main`; ovms_common's `shared`) specifies its
variables: type, nested `options`, `choices`, `required`, `default`; `roles/ovms_common` specifies,
once, the deployment-wide names every role uses. `defaults/main.yml` holds the values (a templated
default only there: its spec has no `default`). The launcher merges those options of every role into
one spec and validates each host's variables against it with ansible-core's own validator
(launcher/validate/argspec.py); what a spec cannot express lives in launcher/validate/rules.py,
keyed by the option paths this module lists.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from launcher.content import content

COMMON_ROLE = "ovms_common"


# what makes a folder of roles/ a role (one being written may hold templates only so far)
ROLE_PARTS = ("tasks", "defaults", "meta")


def collection_roles(roles_dir: Path) -> tuple[str, ...]:
    """The roles of the collection (the folders of roles/ with tasks, defaults or meta), ovms_common
    first: the deployment-wide names, which the other roles use without specifying them again; the
    others by name. Every one of them must have its specs and rule file (launcher/validate/rules.py)."""
    names = sorted(
        p.name for p in roles_dir.iterdir() if p.is_dir() and any((p / part).is_dir() for part in ROLE_PARTS)
    )
    assert COMMON_ROLE in names, f"{roles_dir} has no {COMMON_ROLE} role"
    return (COMMON_ROLE, *(n for n in names if n != COMMON_ROLE))


ROLES = collection_roles(content().roles)

# variable prefix -> the role that reads those variables (named in fixes, even when a name is
# deployment-wide and so specified and defaulted in roles/ovms_common)
PREFIXES: dict[str, str] = {
    "ovms_server_": "ovms_server",
    "ovms_models_": "ovms_models",
    "ovms_client_": "ovms_client",
    "prechecks_": "prechecks",
    "ovms_tls_": "ovms_tls_proxy",
    "ovms_camera_": "ovms_camera",
    "ovms_monitoring_": "ovms_monitoring",
    "ovms_common_": "ovms_common",
    "ovms_destroy_": "ovms_common",
    "ovms_deploy_": "ovms_common",
    "ovms_site": "ovms_common",
}
# Prefixes no role reads, written for one that does: the prechecks role reads `prechecks_*`, so an
# `ovms_prechecks_*` variable would be silently ignored; it is reported with the right name.
WRONG_PREFIXES: dict[str, str] = {"ovms_prechecks_": "prechecks_"}
CHECKED_PREFIXES: tuple[str, ...] = (*PREFIXES, *WRONG_PREFIXES)

try:  # libyaml's loader when present: the specs and defaults are read on every validation
    _Loader: type[yaml.SafeLoader] = yaml.CSafeLoader  # type: ignore[attr-defined]
except AttributeError:  # pragma: no cover
    _Loader = yaml.SafeLoader

_CACHE: dict[Path, tuple[tuple[int, int], Any]] = {}


def load_yaml(path: Path) -> Any:
    """A role file's data (None when missing or unreadable), parsed again only when it changed."""
    try:
        stat = path.stat()
    except OSError:
        return None
    ident = (stat.st_mtime_ns, stat.st_size)
    cached = _CACHE.get(path)
    if cached is not None and cached[0] == ident:
        return cached[1]
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader)  # a safe loader
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        data = None
    _CACHE[path] = (ident, data)
    return data


def prefix_of(variable: str) -> str | None:
    return next((p for p in CHECKED_PREFIXES if variable.startswith(p)), None)


def role_of(variable: str) -> str | None:
    """The role that reads `variable` (by its prefix)."""
    return next((role for p, role in PREFIXES.items() if variable.startswith(p)), None)


def entry_point_options(roles_dir: Path, role: str, entry_point: str | None = None) -> dict[str, dict]:
    """The options of an entry point of a role's argument specs; by default the one that holds the
    role's options (`main`, ovms_common's `shared`: the rule engine's entry_point says why)."""
    from launcher.validate.rules import engine  # imports this module: read when first called

    data = load_yaml(roles_dir / role / "meta" / "argument_specs.yml")
    specs = data.get("argument_specs") if isinstance(data, dict) else None
    entry = specs.get(entry_point or engine().entry_point(role)) if isinstance(specs, dict) else None
    options = entry.get("options") if isinstance(entry, dict) else None
    return dict(options) if isinstance(options, dict) else {}


def nested(option: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The nested `options` of a dict or list-of-dict option (None for any other option)."""
    wanted = option.get("type")
    if wanted == "dict" or (wanted == "list" and option.get("elements") == "dict"):
        sub = option.get("options")
        return sub if isinstance(sub, Mapping) else None
    return None


def walk(options: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Mapping[str, Any]]]:
    """Every option path of a spec with its option: `v`, `v[].name`, `v[].source.url`, ..."""
    for name, option in options.items():
        if not isinstance(option, Mapping):
            continue
        path = f"{prefix}.{name}" if prefix else name
        yield path, option
        sub = nested(option)
        if sub is not None:
            base = f"{path}[]" if option.get("type") == "list" else path
            yield from walk(sub, base)


@dataclass(frozen=True)
class RoleSpecs:
    """The options of every role (entry_point_options) merged into one spec, and the role whose spec
    holds each."""

    options: dict[str, dict] = field(default_factory=dict)
    owners: dict[str, str] = field(default_factory=dict)

    @classmethod
    def load(cls, roles_dir: Path) -> RoleSpecs:
        options: dict[str, dict] = {}
        owners: dict[str, str] = {}
        for role in ROLES:
            for name, option in entry_point_options(roles_dir, role).items():
                if name in options or not isinstance(option, dict):
                    continue  # specified twice: the agreement test reports it
                options[name] = option
                owners[name] = role
        return cls(options, owners)

    def option(self, path: str) -> Mapping[str, Any] | None:
        """The option at a path of `walk` (`ovms_client_profiles[].source.url`), None when unknown."""
        parts = path.replace("[]", "").split(".")
        current: Mapping[str, Any] | None = self.options
        option: Mapping[str, Any] | None = None
        for part in parts:
            if current is None or part not in current:
                return None
            option = current[part]
            current = nested(option) if isinstance(option, Mapping) else None
        return option

    def paths(self) -> set[str]:
        return {path for path, _ in walk(self.options)}
