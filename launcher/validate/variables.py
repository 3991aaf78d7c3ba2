"""Per-host role variables: known names, types and rules, with the file each one comes from.

The contract is the roles' own (launcher/validate/specs.py): the merged `main` argument specs of the
roles, checked by ansible-core's validator (launcher/validate/argspec.py) and the rules a spec cannot
express (launcher/validate/rules.py). Each finding becomes a Problem naming the file that sets the
variable, its full key, and a fix naming the role's defaults file and the default value.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
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
    # what _alike() found, by (the values a host sets but OWN_VALUE ones, those of them deferred)
    alike: dict[tuple[bytes, frozenset[str]], Any] = field(default_factory=dict, compare=False, repr=False)
    # what _checked() found, by (the host's rule context, deferred names): one run, many hosts
    checked: dict[tuple[bytes, frozenset[str]], tuple[tuple[Any, ...], dict[str, Any]]] = field(
        default_factory=dict, compare=False, repr=False
    )

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
        return sorted(self.known_names)

    @cached_property
    def by_prefix(self) -> dict[str, tuple[tuple[str, ...], tuple[str, ...], dict[str, Any]]]:
        """prefix -> the specified variables of that prefix, their names after it, and their options
        by those names."""
        found: dict[str, tuple[tuple[str, ...], tuple[str, ...], dict[str, Any]]] = {}
        for prefix in PREFIXES:
            names = tuple(k for k in self.specs.options if k.startswith(prefix))
            short = tuple(k[len(prefix) :] for k in names)
            options = {s: self.specs.options[k] for s, k in zip(short, names, strict=True)}
            found[prefix] = (names, short, options)
        return found

    @cached_property
    def alone(self) -> dict[str, dict[str, Any]]:
        """OWN_VALUE name -> the options to check it alone with (one mapping each: argspec compiles a
        validator once per options mapping)."""
        return {name: {name: self.specs.options[name]} for name in OWN_VALUE if name in self.specs.options}

    @cached_property
    def known_names(self) -> frozenset[str]:
        return frozenset(self.specs.options) | self.names


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


# Variables a host or a site sets for itself, which no rule reads and whose own rules read nothing
# else (tests/unit/test_sites.py checks both in the rule files): each is checked on its own, once
# per distinct value, so that the rest of a fleet's values (alike from host to host) are checked
# once per distinct set rather than once per site.
OWN_VALUE: tuple[str, ...] = ("ovms_site", "ovms_client_server", "ovms_tls_extra_sans")


def _pickled(value: Any) -> bytes | None:
    """A cache key: equal bytes mean equal values of equal types (True is not 1); None if it has none."""
    import pickle

    try:
        return pickle.dumps(value, protocol=5)
    except (pickle.PicklingError, TypeError, AttributeError):
        return None


def _checked(
    defaults: RoleDefaults, given: Mapping[str, Any], deferred: frozenset[str]
) -> tuple[tuple[argspec.Issue, ...], dict[str, Any]]:
    """argspec.check and the list rules of one host's values (the rules see them, and the PKI folder,
    as the host's context): the issues and the validated values. Once per distinct (context,
    deferred names), kept in `defaults.checked`: hosts of a fleet share most of their values (a
    store's clients differ by ansible_host, not by their ovms_* values). The results are only read."""
    context = _rule_context(given)
    key = _pickled(context)
    ident = None if key is None else (key, deferred)
    if ident is not None and (done := defaults.checked.get(ident)) is not None:
        return done
    with rules.host_context(context, deferred):
        validated, issues = argspec.check(defaults.specs.options, given)
        issues += _list_rules(defaults.specs.options, validated, issues)
    result = (tuple(issues), validated)
    if ident is not None:
        defaults.checked[ident] = result
    return result


def _checked_alone(defaults: RoleDefaults, name: str, value: Any) -> tuple[tuple[argspec.Issue, ...], Any]:
    """The issues and the validated value of one OWN_VALUE variable, once per distinct value."""
    key = _pickled(value)
    ident = None if key is None else (key, frozenset({f"\0{name}"}))
    if ident is not None and (done := defaults.checked.get(ident)) is not None:
        return done[0], done[1][name]
    options = defaults.alone[name]
    with rules.host_context({name: value}):
        validated, issues = argspec.check(options, {name: value})
    if ident is not None:
        defaults.checked[ident] = (tuple(issues), validated)
    return tuple(issues), validated.get(name)


def _views(
    defaults: RoleDefaults,
    validated: Mapping[str, Any],
    invalid: set[str],
    prefixes: Iterable[str] | None = None,
) -> dict[str, View | None]:
    """A View of the validated values per prefix (of `prefixes`, default all); None for a prefix with
    an invalid variable."""
    views: dict[str, View | None] = {}
    for prefix in defaults.by_prefix if prefixes is None else prefixes:
        names, short, options = defaults.by_prefix[prefix]
        values = dict(zip(short, map(validated.get, names), strict=True))
        views[prefix] = None if prefix in invalid else View(values, options)
    return views


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


@dataclass(frozen=True)
class _Alike:
    """What hosts setting the same values (OWN_VALUE ones aside) have in common: their variables over
    the roles' defaults, which come from the defaults, which are left to Ansible, the unknown names,
    the issues and the validated values."""

    merged: dict[str, Any]
    from_defaults: frozenset[str]
    deferred: frozenset[str]
    unknown: tuple[str, ...]
    issues: tuple[argspec.Issue, ...]
    validated: dict[str, Any]
    views: dict[str, View | None]


def _invalid(issues: Iterable[argspec.Issue]) -> set[str]:
    """The prefixes of the variables with an issue."""
    return {prefix_of(m.group(0) if (m := _VARIABLE.match(i.key)) else i.key) or "" for i in issues}


def _alike(defaults: RoleDefaults, rest: Mapping[str, Any], own_deferred: frozenset[str]) -> _Alike:
    """_Alike of a host setting `rest` (its values but OWN_VALUE ones; those of them left to Ansible:
    `own_deferred`), once per distinct pair."""
    key = _pickled(sorted(rest.items()))
    ident = None if key is None else (b"alike:" + key, own_deferred)
    if ident is not None and (done := defaults.alike.get(ident)) is not None:
        return done
    merged: dict[str, Any] = dict(defaults.values)
    merged.update(rest)
    from_defaults = frozenset(k for k in defaults.values if k not in rest)
    given: dict[str, Any] = {}
    deferred: set[str] = set()
    unknown: list[str] = []
    for name in sorted(merged):
        value = merged[name]
        if name in OWN_VALUE:
            continue  # checked on its own (check_host)
        if name not in defaults.known_names:
            unknown.append(name)
        elif name not in defaults.specs.options:
            continue  # a default without a spec: the agreement test (tests/unit/test_validate_schema.py)
        elif name not in from_defaults and templated(value):  # defaults.values hold no templated value
            deferred.add(name)
        else:
            given[name] = value
    issues, validated = _checked(defaults, given, frozenset(deferred | own_deferred))
    views = _views(defaults, validated, _invalid(issues))
    found = _Alike(merged, from_defaults, frozenset(deferred), tuple(unknown), issues, validated, views)
    if ident is not None:
        defaults.alike[ident] = found
    return found


def check_host(
    host: InventoryHost,
    extravars: Mapping[str, Any],
    defaults: RoleDefaults,
    origins: VarOrigins,
) -> tuple[HostVars, list[Problem]]:
    """Unknown names, types and rules of one host's role variables (values from its inventory and
    the extra vars over the roles' defaults); templated values are left to Ansible. Hosts setting the
    same values share the work (_alike); the problems name each host and the file setting its value."""
    problems: list[Problem] = []
    here: dict[str, Any] = {}
    for source in (host.vars, extravars):
        for key, value in source.items():
            if isinstance(key, str) and prefix_of(key) is not None:
                here[key] = value
    rest = {k: v for k, v in here.items() if k not in OWN_VALUE}
    own_deferred = frozenset(k for k in OWN_VALUE if k in here and templated(here[k]))
    alike = _alike(defaults, rest, own_deferred)
    from_defaults = alike.from_defaults - here.keys()

    def where(key: str) -> str:
        if key in from_defaults:
            return defaults.files[key]
        return origins.find(key, host.name, host.groups)

    merged = dict(alike.merged)
    issues = list(alike.issues)
    validated = alike.validated
    own: dict[str, Any] = {}
    for name in OWN_VALUE:
        if name in here:
            own[name] = merged[name] = here[name]
        elif name in defaults.values:
            own[name] = defaults.values[name]
    result = HostVars(host=host, raw=merged, deferred=set(alike.deferred | own_deferred))
    for key in alike.unknown:
        message, fix = _unknown(key, defaults.known())
        problems.append(Problem(where(key), key, message, fix, (host.name,)))
    checked_alone = [(n, v) for n, v in own.items() if n in defaults.alone and n not in own_deferred]
    result.views = dict(alike.views)
    if checked_alone:
        validated = dict(validated)
        for name, value in checked_alone:
            found, validated[name] = _checked_alone(defaults, name, value)
            issues += found
        # the Views of the prefixes holding these values (the others are the alike hosts')
        touched = {prefix_of(name) or "" for name, _ in checked_alone} & defaults.by_prefix.keys()
        result.views.update(_views(defaults, validated, _invalid(issues), touched))
    for issue in issues:
        match = _VARIABLE.match(issue.key)
        variable = match.group(0) if match else issue.key
        problems.append(
            Problem(where(variable), issue.key, issue.message, _fix(issue, variable, defaults), (host.name,))
        )
    return result, problems
