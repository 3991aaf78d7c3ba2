"""Per-host role variables: known names, types and rules, with the file each one comes from.

The contract is the roles' own (launcher/validate/specs.py): the merged `main` argument specs of the
roles, checked by ansible-core's validator (launcher/validate/argspec.py) and the rules a spec cannot
express (launcher/validate/rules.py). Each finding becomes a Problem naming the file that sets the
variable, its full key, and a fix naming the role's defaults file and the default value.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from launcher.inventory import Inventory, InventoryHost
from launcher.validate import argspec, rules
from launcher.validate.origins import VarOrigins
from launcher.validate.problems import Problem
from launcher.validate.specs import PREFIXES, ROLES, RoleSpecs, load_yaml, nested, prefix_of, role_of
from launcher.validate.view import View


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
    """The role variables of `roles/*/defaults/main.yml`: all names, the values that are not
    templated (a templated default, e.g. "the first server", is computed by the role at run time), the
    file of each, and the roles' merged argument specs."""

    names: frozenset[str] = frozenset()
    values: dict[str, Any] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)
    specs: RoleSpecs = field(default_factory=RoleSpecs)

    @classmethod
    def load(cls, roles_dir: Path) -> RoleDefaults:
        names: set[str] = set()
        values: dict[str, Any] = {}
        files: dict[str, str] = {}
        # ovms_common holds the deployment-wide names every role uses (server container, networks,
        # data folders, TLS port...); each role's own defaults come after it
        for role in ROLES:
            path = roles_dir / role / "defaults" / "main.yml"
            data = load_yaml(path)
            if not isinstance(data, dict):
                continue
            for key, value in data.items():
                if not isinstance(key, str) or prefix_of(key) is None:
                    continue
                names.add(key)
                files[key] = str(path)
                if not templated(value):
                    values[key] = value
        return cls(frozenset(names), values, files, RoleSpecs.load(roles_dir))

    def known(self) -> list[str]:
        return sorted(set(self.specs.options) | self.names)


@dataclass
class HostVars:
    """One host's checked role variables: a read-only View per prefix (None when one is invalid),
    the names left to Ansible (templated), and the merged values as given."""

    host: InventoryHost
    views: dict[str, View | None] = field(default_factory=dict)
    deferred: set[str] = field(default_factory=set)
    raw: dict[str, Any] = field(default_factory=dict)

    def get(self, prefix: str) -> Any:
        """The View of `prefix` ("ovms_server_"...): `.grpc_port`, `.models[0].name`; None if invalid."""
        return self.views.get(prefix)


def _unknown(variable: str, known: list[str]) -> tuple[str, str]:
    close = difflib.get_close_matches(variable, known, n=3, cutoff=0.6)
    if close:
        return "unknown variable", f"did you mean {' or '.join(close)}?"
    prefix = prefix_of(variable) or ""
    same_role = [k for k in known if k.startswith(prefix)]
    return "unknown variable", f"remove it or use one of: {', '.join(same_role)}"


def _description(option: Mapping[str, Any] | None) -> str:
    text = option.get("description", "") if option else ""
    if isinstance(text, list):
        text = " ".join(str(t) for t in text)
    return " ".join(str(text).split()).rstrip(".")


def _fix(issue: argspec.Issue, variable: str, defaults: RoleDefaults) -> str:
    """What to do: the hint, what the option is (a nested one), the role files, the default value."""
    specs = defaults.specs
    owner = specs.owners.get(variable) or role_of(variable) or "ovms_common"
    user = role_of(variable) or owner
    parts = [issue.hint] if issue.hint else []
    if issue.path != variable and (described := _description(specs.option(issue.path))):
        parts.append(f"{issue.path}: {described}")
    see = f"see roles/{owner}/defaults/main.yml and its meta/argument_specs.yml"
    if owner != user:
        see += f" (deployment-wide names: roles/{user}/defaults/main.yml points there)"
    parts.append(see)
    if issue.key == variable and variable in defaults.values:
        parts.append(f"the default is {variable}: {_flow(defaults.values[variable])}")
    return "; ".join(parts)


def _flow(value: Any) -> str:
    """A value as one line of YAML: `9000`, `/var/lib/x`, `[]`, `{GPU: [/dev/dri]}`, `''`."""
    text = yaml.safe_dump(value, default_flow_style=True, width=1 << 16).strip()
    return text.removesuffix("...").strip()


_VARIABLE = re.compile(r"^[^.\[]+")


def _list_rules(
    options: Mapping[str, Any], validated: Mapping[str, Any], issues: list[argspec.Issue]
) -> list[argspec.Issue]:
    """The rules of a list of mappings as a whole (each stream name once: `ovms_camera_streams`), once
    each of its entries passed: argspec.check runs those of each entry and of their options."""
    failed = {_VARIABLE.match(issue.key).group(0) for issue in issues if _VARIABLE.match(issue.key)}
    found: list[argspec.Issue] = []
    for name, option in options.items():
        value = validated.get(name)
        if name in failed or value is None or option.get("type") != "list" or nested(option) is None:
            continue
        for suffix, message in rules.run(name, value, validated):
            found.append(argspec.Issue(name + suffix, name, message))
    return found


def _rule_context(given: Mapping[str, Any]) -> dict[str, Any]:
    """The host's variables the rules read (launcher/validate/rules.py): the values given, and the PKI
    folder the launcher passes to the run (OVMS_LAUNCHER_CERTS_DIR) when the inventory sets none."""
    from launcher.paths import default_certs_dir

    top = dict(given)
    top.setdefault("ovms_tls_certs_dir", str(default_certs_dir()))
    return top


def check_hosts(
    inventory: Inventory, extravars: Mapping[str, Any], defaults: RoleDefaults, origins: VarOrigins
) -> tuple[dict[str, HostVars], list[Problem]]:
    """check_host() of every inventory host: name -> its checked variables, and all their problems."""
    hosts: dict[str, HostVars] = {}
    problems: list[Problem] = []
    for host in inventory.hosts.values():
        hosts[host.name], host_problems = check_host(host, extravars, defaults, origins)
        problems += host_problems
    return hosts, problems


def check_host(
    host: InventoryHost,
    extravars: Mapping[str, Any],
    defaults: RoleDefaults,
    origins: VarOrigins,
) -> tuple[HostVars, list[Problem]]:
    """Unknown names, types and rules of one host's role variables (values from its inventory and
    the extra vars over the roles' defaults); templated values are left to Ansible."""
    problems: list[Problem] = []
    specs = defaults.specs
    known = defaults.known()
    merged: dict[str, Any] = dict(defaults.values)
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
    given: dict[str, Any] = {}
    for key in sorted(merged):
        value = merged[key]
        if key not in known:
            message, fix = _unknown(key, known)
            problems.append(Problem(where(key), key, message, fix, (host.name,)))
        elif key not in specs.options:
            continue  # a default without a spec: the agreement test (tests/unit/test_validate_schema.py)
        elif templated(value):
            result.deferred.add(key)
        else:
            given[key] = value
    with rules.host_context(_rule_context(given), result.deferred):
        validated, issues = argspec.check(specs.options, given)
        issues += _list_rules(specs.options, validated, issues)
    invalid: set[str] = set()
    for issue in issues:
        match = _VARIABLE.match(issue.key)
        variable = match.group(0) if match else issue.key
        invalid.add(prefix_of(variable) or "")
        problems.append(
            Problem(where(variable), issue.key, issue.message, _fix(issue, variable, defaults), (host.name,))
        )
    for prefix in PREFIXES:
        if prefix in invalid:
            result.views[prefix] = None
            continue
        names = [k for k in specs.options if k.startswith(prefix)]
        result.views[prefix] = View(
            {k[len(prefix) :]: validated.get(k) for k in names},
            {k[len(prefix) :]: specs.options[k] for k in names},
        )
    return result, problems
