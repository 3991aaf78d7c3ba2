"""The roles' rules as the launcher applies them: the same rule files (`roles/<role>/meta/rules.yml`)
through the same engine (the collection's plugins/module_utils/ovms_rules.py, loaded by its path as
launcher/validate/common_role.py loads the roles' filters) as the action plugin `ovms.edge.ovms_check`,
every role's first task, applies to the templated values at run time.

Every rule is keyed by an option path of the roles' specs (launcher/validate/specs.py: a variable
`ovms_tls_port`, an entry option `ovms_client_profiles[].source.url`); tests/unit/test_contract_rules.py
checks each path exists in a spec. ansible-core's validator runs first (launcher/validate/argspec.py):
a rule runs only on a value that passed it, already converted to the option's type.

The launcher knows less than a run: a templated value is left to the role's check (`deferred`); the
host's variables a rule reads (`ovms_tls_certs_dir`, `ovms_common_system_dirs`...) come from the
context launcher/validate/variables.py sets for the host being checked (`host_context`).
"""

from __future__ import annotations

import contextlib
import importlib.util
import sys
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from types import ModuleType
from typing import Any

from launcher.content import content
from launcher.validate.specs import ROLES

# (key below the option: "" for the option itself, "[2]" for a list item, ".GPU[0]" inside a mapping; message)
Finding = tuple[str, str]
_MODULE = "ovms_edge_rules"


@cache
def engine() -> ModuleType:
    """plugins/module_utils/ovms_rules.py of the collection the launcher runs, as a module."""
    path = content().root / "plugins" / "module_utils" / "ovms_rules.py"
    spec = importlib.util.spec_from_file_location(_MODULE, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[_MODULE] = module  # NamedTuple and dataclass types resolve their module by name
    spec.loader.exec_module(module)
    return module


@cache
def ruleset() -> Any:
    """Every role's rule file, ovms_common's first (its definitions serve the others)."""
    roles = content().roles
    merged = engine().load_rules(str(roles / ROLES[0]))
    for role in ROLES[1:]:
        merged = merged.merged(engine().load_rules(str(roles / role)))
    return merged


@dataclass(frozen=True)
class Rule:
    """One rule of a rule file: its option path and the siblings it reads (shown by tests)."""

    path: str
    rule: Mapping[str, Any]

    @property
    def reads(self) -> tuple[str, ...]:
        return tuple(self.rule.get("reads") or ())


@cache
def _rules() -> dict[str, tuple[Rule, ...]]:
    return {path: tuple(Rule(path, r) for r in rules) for path, rules in ruleset().rules.items()}


class _ByPath(Mapping[str, tuple[Rule, ...]]):
    """option path -> its rules, read from the rule files on first use."""

    def __getitem__(self, path: str) -> tuple[Rule, ...]:
        return _rules()[path]

    def __iter__(self) -> Iterator[str]:
        return iter(_rules())

    def __len__(self) -> int:
        return len(_rules())


BY_PATH: Mapping[str, tuple[Rule, ...]] = _ByPath()


def paths() -> set[str]:
    return set(ruleset().rules)


def __getattr__(name: str) -> Any:
    if name == "RULES":
        return tuple(rule for rules in _rules().values() for rule in rules)
    if name == "TYPE_WORDS":
        return engine().TYPE_WORDS
    raise AttributeError(name)


# --- the host being checked: its variables and the names left to Ansible ----------------------------

_CONTEXT: list[tuple[Mapping[str, Any], frozenset[str]]] = []


@contextlib.contextmanager
def host_context(top: Mapping[str, Any], deferred: Iterable[str] = ()) -> Iterator[None]:
    """Rules run inside read the host's variables `top` (templated ones, `deferred`, are unknown)."""
    _CONTEXT.append((top, frozenset(deferred)))
    try:
        yield
    finally:
        _CONTEXT.pop()


def got(message: str, value: Any) -> str:
    return str(engine().got(message, value))


def shape(wanted: str | None, value: Any) -> str | None:
    return engine().shape(wanted, value)


def shape_findings(option: Mapping[str, Any], value: Any) -> list[Finding]:
    """Shape problems of a value and, for a list, of each of its items (`elements`)."""
    return list(engine().shape_findings(option, value))


def run(
    path: str,
    value: Any,
    siblings: Mapping[str, Any],
    invalid: Iterable[str] = (),
    *,
    secret: bool = False,
) -> list[Finding]:
    """The findings of the first rule of `path` that fails (rules of a path run in order, as each
    needs the one before it to pass: a size pattern before its unit arithmetic)."""
    rules = ruleset().rules.get(path)
    if not rules:
        return []
    top, deferred = _CONTEXT[-1] if _CONTEXT else (siblings, frozenset())
    ctx = engine().Context(siblings, top, deferred, secret)
    return list(engine().evaluate(rules, value, ctx, frozenset(invalid)))


def host_name(name: str, top: Mapping[str, Any] | None = None) -> list[str]:
    """Why an inventory host name is refused (the host rule of roles/ovms_common/meta/rules.yml)."""
    found = engine().check_host(name, ruleset(), top or {})
    return [finding.message for finding in found]


def data_dir_problem(path: Any, system_dirs: Any, sensitive_dirs: Any) -> str:
    return str(engine().data_dir_problem(path, system_dirs, sensitive_dirs))
