"""Role variables checked by ansible-core's own argument-spec validator, mapping by mapping.

ansible-core validates nested options itself, but names a nested finding only by its parent names
("found in ovms_client_profiles -> source"), never by list index. So ansible's ArgumentSpecValidator
runs here on each mapping of a value in turn: the host's variables with the merged specs of the roles,
then each entry of a list of mappings and each nested mapping with that option's `options` (and its
`mutually_exclusive`, `required_if`, ... as ansible's nested validation passes them). Each finding is
thus named by its full key (`ovms_client_profiles[1].source.sha256`) and worded like the launcher's
other messages; the rules of launcher/validate/rules.py then run on the values ansible accepted,
converted to their types.

Two deliberate differences from a role's own validation: `path` options are validated as strings (the
validator expands `~` and `$VARS` on the controller, while the roles read the value as written), and
the shapes rules.shape refuses never reach the validator.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.module_utils.errors import (
    ArgumentTypeError,
    ArgumentValueError,
    ElementError,
    MutuallyExclusiveError,
    RequiredError,
    RequiredIfError,
    RequiredOneOfError,
    UnsupportedError,
)

from launcher.validate import rules
from launcher.validate.specs import nested

# constraints of a dict option that apply to its nested options
CONSTRAINTS = ("mutually_exclusive", "required_together", "required_one_of", "required_if", "required_by")
_DOC_KEYS = ("options", "description", *CONSTRAINTS)

_NAME = r"(?P<name>[^'\s]+)"
_TYPE = re.compile(rf"^argument '{_NAME}' is of type .+? and we were unable to convert to (?P<type>\w+)")
_ELEMENT = re.compile(rf"^Elements value for option '{_NAME}'")
_CHOICE = re.compile(rf"^value of {_NAME} must be (?:one or more|one) of: ")
_MISSING = re.compile(r"^missing required arguments: (?P<names>.+?)(?: found in .*)?$")
_REQUIRED_IF = re.compile(
    r"^(?P<key>\S+) is (?P<value>.+?) but (?P<how>all|any) of the following are missing: "
    r"(?P<names>.+?)(?: found in .*)?$"
)
_GROUP = re.compile(r"^[^:]+: (?P<groups>.+?)(?: found in .*)?$")


@dataclass(frozen=True)
class Issue:
    """One finding: the full key, the option path of the specs it concerns, the message, and a hint
    for the fix (the fix itself names the role files: launcher/validate/variables.py)."""

    key: str
    path: str
    message: str
    hint: str = ""


def _child_key(key: str, name: str) -> str:
    return f"{key}.{name}" if key else name


def _level_spec(options: Mapping[str, Any]) -> dict[str, dict]:
    """The options of one mapping as the validator takes them: nested options are validated mapping
    by mapping (below), `path` as `str` (see the module docstring)."""
    spec: dict[str, dict] = {}
    for name, option in options.items():
        flat = {k: v for k, v in option.items() if k not in _DOC_KEYS}
        if flat.get("type") == "path":
            flat["type"] = "str"
        if flat.get("elements") == "path":
            flat["elements"] = "str"
        if "elements" in flat and flat.get("type") != "list":
            del flat["elements"]
        spec[name] = flat
    return spec


_SPECS: dict[int, tuple[Mapping[str, Any], dict[str, dict]]] = {}


def _cached_spec(options: Mapping[str, Any]) -> dict[str, dict]:
    cached = _SPECS.get(id(options))
    if cached is None or cached[0] is not options:  # the id of a spec no longer loaded may be reused
        cached = (options, _level_spec(options))
        _SPECS[id(options)] = cached
    return cached[1]


def _groups(error: Exception) -> list[list[str]]:
    """The option groups an error of ansible's names: `a|b, c|d` (mutually exclusive), `a, b` (others)."""
    match = _GROUP.match(str(error))
    if not match:
        return []
    if isinstance(error, MutuallyExclusiveError):
        return [group.split("|") for group in match["groups"].split(", ")]
    return [match["groups"].split(", ")]


def _listed(names: list[str]) -> str:
    return ", ".join(names[:-1]) + f" or {names[-1]}" if len(names) > 1 else names[0]


class _Level:
    """One mapping being validated: its options, the values given, where it sits."""

    def __init__(
        self, options: Mapping[str, Any], given: dict[str, Any], key: str, path: str, owner: Mapping[str, Any]
    ) -> None:
        self.options = options
        self.given = given
        self.key = key
        self.path = path
        self.owner = owner  # the dict option holding these options (its constraints), {} at the top
        self.issues: list[Issue] = []
        self.invalid: set[str] = set()  # options with an issue

    def add(self, name: str | None, message: str, suffix: str = "", hint: str = "") -> None:
        """An issue of option `name` (`suffix`: below it, e.g. `[2]`), or of the mapping (None)."""
        if name is None:
            self.issues.append(Issue(self.key, self.path, message, hint))
            return
        self.invalid.add(name)
        key = _child_key(self.key, name) + suffix
        self.issues.append(Issue(key, _child_key(self.path, name), message, hint))

    def _value(self, name: str) -> Any:
        return self.given.get(name)

    def unknown(self, names: set[str]) -> None:
        known = sorted(self.options)
        for name in sorted(names, key=str):
            close = difflib.get_close_matches(str(name), known, n=2, cutoff=0.6)
            hint = f"did you mean {' or '.join(close)}? " if close else ""
            self.issues.append(
                Issue(
                    _child_key(self.key, str(name)),
                    self.path,
                    "is not a known key",
                    f"{hint}it takes {', '.join(known) if known else 'no key'}",
                )
            )

    def ansible_error(self, error: Exception) -> None:
        """One error of ansible's validator as an issue named by its full key."""
        text = str(error)
        if isinstance(error, ArgumentTypeError) and (match := _TYPE.match(text)):
            name = match["name"]
            word = rules.TYPE_WORDS.get(match["type"], match["type"])
            self.add(name, rules.got(f"is not a valid {word}", self._value(name)))
        elif isinstance(error, ElementError) and (match := _ELEMENT.match(text)):
            self._elements(match["name"])
        elif isinstance(error, ArgumentValueError) and (match := _CHOICE.match(text)):
            name = match["name"]
            choices = [str(c) for c in self.options[name].get("choices", [])]
            self.add(name, rules.got(f"must be one of {', '.join(choices)}", self._value(name)))
        elif isinstance(error, RequiredError) and (match := _MISSING.match(text)):
            for name in match["names"].split(", "):
                self.add(name, "is required but missing")
        elif isinstance(error, RequiredIfError) and (match := _REQUIRED_IF.match(text)):
            names = match["names"].split(", ")
            when = f"when {match['key']} is {match['value']}"
            if match["how"] == "any":
                self.add(None, f"needs one of {_listed(names)} {when}")
            else:
                for name in names:
                    self.add(name, f"is required {when}")
        elif isinstance(error, MutuallyExclusiveError | RequiredOneOfError):
            exclusive = [sorted(g) for g in self.owner.get("mutually_exclusive") or []]
            needed = [sorted(g) for g in self.owner.get("required_one_of") or []]
            for group in _groups(error):
                both = sorted(group) in exclusive and sorted(group) in needed
                if both:
                    self.add(None, f"must have exactly one of {', '.join(group)}")
                elif isinstance(error, MutuallyExclusiveError):
                    self.add(None, f"takes only one of {', '.join(group)}")
                else:
                    self.add(None, f"needs one of {', '.join(group)}")
        else:  # any other finding of ansible's, as it words it
            self.add(None, text)

    def nulls(self, given: Mapping[str, Any]) -> None:
        """What ansible's `required`, `required_if` and `required_one_of` let through: they count a key
        given as null (`url:` with no value) as given (a required string then reads as ""); the roles
        would read no value."""
        for name, option in self.options.items():
            if option.get("required") and name in given and given[name] is None:
                self.add(name, "is required but has no value")
        for requirement in self.owner.get("required_if") or []:
            name, wanted, needed = requirement[0], requirement[1], list(requirement[2])
            if given.get(name) != wanted:
                continue
            unset = [n for n in needed if given.get(n) is None]
            if not any(n in given for n in unset):
                continue  # absent ones: ansible reported them
            if len(requirement) > 3 and requirement[3]:
                if len(unset) == len(needed):
                    self.add(None, f"needs one of {_listed(needed)} when {name} is {wanted}")
            else:
                for n in unset:
                    self.add(n, f"is required when {name} is {wanted}")
        exclusive = [sorted(g) for g in self.owner.get("mutually_exclusive") or []]
        for group in self.owner.get("required_one_of") or []:
            if any(n in given for n in group) and all(given.get(n) is None for n in group):
                how = "must have exactly one of" if sorted(group) in exclusive else "needs one of"
                self.add(None, f"{how} {', '.join(group)}, with a value")

    def _elements(self, name: str) -> None:
        """Which items of list `name` ansible could not convert (it names the list only)."""
        wanted = self.options[name].get("elements")
        wanted = "str" if wanted == "path" else wanted
        checker = ArgumentSpecValidator({"item": {"type": wanted}})
        word = rules.TYPE_WORDS.get(str(wanted), str(wanted))
        items = self._value(name) or []
        for index, item in enumerate(items):
            if checker.validate({"item": item}).error_messages:
                self.add(name, rules.got(f"is not a valid {word}", item), suffix=f"[{index}]")
        if name not in self.invalid:
            self.add(name, f"holds an item that is not a valid {word}")


def check(
    options: Mapping[str, Any],
    values: Mapping[str, Any],
    *,
    key: str = "",
    path: str = "",
    owner: Mapping[str, Any] | None = None,
) -> tuple[dict[str, Any], list[Issue]]:
    """`values` (one mapping) validated against `options`: the values converted and completed as
    ansible's validator leaves them (absent options set to their default, else None), and the issues.

    `key`: the full key of this mapping (`ovms_server_models[0]`, "" for the variables themselves);
    `path`: its option path in the specs (`ovms_server_models[]`); `owner`: the option holding these
    options (its constraints). The rules of an option run once ansible accepted it and everything
    nested in it; those of this mapping as a whole (`ovms_client_profiles[]`) last."""
    owner = owner or {}
    level = _Level(options, dict(values), key, path, owner)
    for name in list(level.given):
        option = options.get(name)
        if option is not None:
            for suffix, message in rules.shape_findings(option, level.given[name]):
                level.add(name, message, suffix)
    given = {k: v for k, v in level.given.items() if k not in level.invalid}
    validator = ArgumentSpecValidator(_cached_spec(options), **{c: owner.get(c) for c in CONSTRAINTS})
    result = validator.validate(given)
    level.unknown({name for name in result.unsupported_parameters if isinstance(name, str)})
    for error in result.errors:
        if not isinstance(error, UnsupportedError):
            level.ansible_error(error)
    if not result.error_messages:
        level.nulls(given)
    validated: dict[str, Any] = result.validated_parameters
    for name, option in options.items():
        value = validated.get(name)
        if name in level.invalid or value is None:
            continue
        here = _child_key(path, name)
        sub = nested(option)
        if sub is None:
            for suffix, message in rules.run(here, value, validated, level.invalid):
                level.add(name, message, suffix)
            continue
        found: list[Issue] = []
        ckey = _child_key(key, name)
        if option.get("type") == "list":
            items = []
            for index, item in enumerate(value):
                done, more = check(sub, item, key=f"{ckey}[{index}]", path=f"{here}[]", owner=option)
                items.append(done)
                found += more
            validated[name] = items
        else:
            validated[name], found = check(sub, value, key=ckey, path=here, owner=option)
        if found:
            level.invalid.add(name)
            level.issues += found
    if path and not level.issues:
        findings = rules.run(path, validated, {})
        level.issues += [Issue(key + suffix, path, message) for suffix, message in findings]
    return validated, level.issues
