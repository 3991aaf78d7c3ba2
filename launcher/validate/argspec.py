"""Role variables checked by ansible-core's own argument-spec validator, mapping by mapping.

ansible-core validates nested options itself, but names a nested finding only by its parent names
("found in ovms_client_profiles -> source"), never by list index. So ansible's ArgumentSpecValidator
runs here on each mapping of a value in turn: the host's variables with the merged specs of the roles,
then each entry of a list of mappings and each nested mapping with that option's `options` (and its
`mutually_exclusive`, `required_if`, ... as ansible's nested validation passes them). Each finding is
thus named by its full key (`ovms_client_profiles[1].source.sha256`).

ansible-core decides; its English is never read. A mapping is validated whole once (the common case:
no finding). When ansible refuses it, each finding is placed by structure, not by message text: every
option is validated again alone (a spec holding only that option, so an error belongs to it), and each
constraint group alone (a validator given only that group, so the group that failed is the one passed).
The class of ansible's error (ansible.module_utils.errors) gives only the kind of finding; the message
is the launcher's, worded from the spec (the type, the choices, the group, the requirement). The value
of a `no_log` option, or of anything inside one, is never shown. The rules of the roles' rule files
(launcher/validate/rules.py) then run on the values ansible accepted, converted to their types.

The launcher is stricter than ansible-core's validator where the roles read a value as written, never
as the validator converts it; the roles' rule engine (plugins/module_utils/ovms_rules.py, through
launcher/validate/rules.py) holds the same rules and applies them to the templated values at run time:
- shapes: the conversions ansible would make silently (a list printed into a string, `a,b` split into
  a list, `k=v` parsed into a mapping, a boolean read as 1) are refused: `rules.shape_findings`, the
  engine's SHAPES;
- null values: a key given with no value (`url:`) counts as absent (ansible counts the key as given,
  and a required string then reads as ""): NULL_IS_MISSING below;
- `path` options are validated as strings: ansible's validator would expand `~` and `$VARS` on the
  controller, while the roles read the value as written (a difference, not a refusal).
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.module_utils.errors import (
    AnsibleValidationError,
    ArgumentTypeError,
    ArgumentValueError,
    ElementError,
    MutuallyExclusiveError,
    RequiredByError,
    RequiredError,
    RequiredIfError,
    RequiredOneOfError,
    RequiredTogetherError,
    UnsupportedError,
)

from launcher.validate import rules
from launcher.validate.specs import nested

# constraints of a dict option that apply to its nested options
CONSTRAINTS = ("mutually_exclusive", "required_together", "required_one_of", "required_if", "required_by")
_DOC_KEYS = ("options", "description", *CONSTRAINTS)
# the error class ansible's validator reports for each constraint that fails
CONSTRAINT_ERRORS: dict[str, type[AnsibleValidationError]] = {
    "mutually_exclusive": MutuallyExclusiveError,
    "required_together": RequiredTogetherError,
    "required_one_of": RequiredOneOfError,
    "required_if": RequiredIfError,
    "required_by": RequiredByError,
}
# what validating one option alone can report: placed on that option
_OPTION_ERRORS = (RequiredError, ArgumentTypeError, ElementError, ArgumentValueError)
_PLACED = (*_OPTION_ERRORS, *CONSTRAINT_ERRORS.values(), UnsupportedError)
# the launcher's stricter reading of null values (module docstring): where ansible counts a key given
# with no value as given, the launcher (and the roles' rule engine) count it as missing
NULL_IS_MISSING = ("required", "required_if", "required_one_of")


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


def _groups(kind: str, value: Any) -> list[Any]:
    """The groups of one constraint as the owner lists them; `required_by` as (key, names) pairs."""
    if not value:
        return []
    if kind == "required_by":
        return list(value.items()) if isinstance(value, Mapping) else []
    return list(value)


def _one(kind: str, group: Any) -> Any:
    """The constraint `kind` holding only `group`, as ArgumentSpecValidator takes it."""
    return {group[0]: group[1]} if kind == "required_by" else [group]


@dataclass
class _Compiled:
    """The validators of one mapping's options under one owner, built once per loaded spec: the
    mapping whole, and (only once a mapping is refused) each option alone and each constraint group
    alone."""

    options: Mapping[str, Any]
    owner: Mapping[str, Any]
    spec: dict[str, dict]
    whole: ArgumentSpecValidator
    nested: frozenset[str]  # the options with nested options
    required: tuple[str, ...]  # the required options
    no_log: frozenset[str]  # the no_log options
    alone: dict[str, ArgumentSpecValidator] = field(default_factory=dict)
    groups: dict[tuple[str, int], ArgumentSpecValidator] = field(default_factory=dict)

    def option(self, name: str) -> ArgumentSpecValidator:
        validator = self.alone.get(name)
        if validator is None:
            validator = self.alone[name] = ArgumentSpecValidator({name: self.spec[name]})
        return validator

    def constraint(self, kind: str, index: int, group: Any) -> ArgumentSpecValidator:
        validator = self.groups.get((kind, index))
        if validator is None:
            validator = ArgumentSpecValidator(self.spec, **{kind: _one(kind, group)})
            self.groups[(kind, index)] = validator
        return validator


_COMPILED: dict[tuple[int, int], _Compiled] = {}
_TOP: Mapping[str, Any] = {}  # the owner of the variables themselves: no constraints
_ITEMS: dict[str, ArgumentSpecValidator] = {}


def _compiled(options: Mapping[str, Any], owner: Mapping[str, Any]) -> _Compiled:
    ident = (id(options), id(owner))
    cached = _COMPILED.get(ident)
    # the entry holds both objects, so their ids cannot be reused while it exists
    if cached is None or cached.options is not options or cached.owner is not owner:
        if len(_COMPILED) > 512:  # specs loaded again and again (tests): keep the cache small
            _COMPILED.clear()
        spec = _level_spec(options)
        constraints = {c: owner.get(c) for c in CONSTRAINTS}
        cached = _Compiled(
            options,
            owner,
            spec,
            ArgumentSpecValidator(spec, **constraints),
            frozenset(n for n, o in options.items() if nested(o) is not None),
            tuple(n for n, o in options.items() if o.get("required")),
            frozenset(n for n, o in options.items() if o.get("no_log")),
        )
        _COMPILED[ident] = cached
    return cached


def _item_validator(wanted: str) -> ArgumentSpecValidator:
    validator = _ITEMS.get(wanted)
    if validator is None:
        validator = _ITEMS[wanted] = ArgumentSpecValidator({"item": {"type": wanted}})
    return validator


def _listed(names: Sequence[Any], how: str = "or") -> str:
    words = [str(n) for n in names]
    return ", ".join(words[:-1]) + f" {how} {words[-1]}" if len(words) > 1 else "".join(words)


def _type_word(wanted: Any) -> str:
    wanted = "str" if wanted in (None, "path") else str(wanted)
    return rules.TYPE_WORDS.get(wanted, wanted)


class _Level:
    """One mapping being validated: its options, the values given, where it sits."""

    def __init__(
        self,
        options: Mapping[str, Any],
        given: dict[str, Any],
        key: str,
        path: str,
        owner: Mapping[str, Any],
        secret: bool,
        no_log: frozenset[str] = frozenset(),
    ) -> None:
        self.options = options
        self.no_log = no_log
        self.given = given
        self.key = key
        self.path = path
        self.owner = owner  # the dict option holding these options (its constraints), {} at the top
        self.secret = secret  # inside a no_log option: no value shown
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

    def hidden(self, name: str) -> bool:
        return self.secret or name in self.no_log

    def got(self, name: str, message: str, value: Any) -> str:
        """`message (got 'x')`, without the value of a no_log option."""
        return message if self.hidden(name) else rules.got(message, value)

    def shapes(self, name: str) -> None:
        """The shapes the launcher refuses where ansible would convert (rules.shape_findings)."""
        option = self.options[name]
        for suffix, message in rules.shape_findings(option, self.given[name]):
            if self.hidden(name):  # worded again from the spec: the rule's message shows the value
                wanted = option.get("elements") if suffix else option.get("type")
                message = f"is not a valid {_type_word(wanted)}"
            self.add(name, message, suffix)

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

    def present(self, given: Mapping[str, Any]) -> set[str]:
        """The options ansible counts as given when it checks constraints: the keys given (null ones
        too) and the options it has set to their non-null default by then."""
        return set(given) | {n for n, o in self.options.items() if o.get("default") is not None}

    def refused(self, compiled: _Compiled, given: dict[str, Any], errors: Sequence[Exception]) -> None:
        """ansible refused the mapping: each finding placed by validating one option, then one
        constraint group, at a time (only for the kinds of error ansible reported)."""
        kinds = {type(error) for error in errors}
        if kinds & set(_OPTION_ERRORS):
            for name, option in self.options.items():
                if name in self.invalid or (name not in given and not option.get("required")):
                    continue
                alone = compiled.option(name).validate({name: given[name]} if name in given else {})
                for error in alone.errors.errors:
                    self.option_error(name, error)
        present = self.present(given)
        for kind, wanted in CONSTRAINT_ERRORS.items():
            if wanted not in kinds:
                continue
            for index, group in enumerate(_groups(kind, self.owner.get(kind))):
                result = compiled.constraint(kind, index, group).validate(given)
                if any(isinstance(error, wanted) for error in result.errors.errors):
                    self.constraint_error(kind, group, present, given)
        for error in errors:  # a kind no option or group alone reproduces (a fault of the spec itself)
            if not isinstance(error, _PLACED):
                # shown as ansible words it, unless a no_log value could be in it
                secret = self.secret or any(o.get("no_log") for o in self.options.values())
                text = "" if secret else f": {error}"
                self.add(None, f"is refused by ansible-core's validator ({type(error).__name__}){text}")

    def option_error(self, name: str, error: Exception) -> None:
        option = self.options[name]
        value = self.given.get(name)
        if isinstance(error, RequiredError):
            self.add(name, "is required but missing")
        elif isinstance(error, ElementError):
            self.elements(name)
        elif isinstance(error, ArgumentTypeError) and value is None:  # only a required one is typed
            self.add(name, "is required but has no value")
        elif isinstance(error, ArgumentTypeError):
            self.add(name, self.got(name, f"is not a valid {_type_word(option.get('type'))}", value))
        elif isinstance(error, ArgumentValueError):
            choices = [str(c) for c in option.get("choices") or []]
            message = f"must be one of {', '.join(choices)}"
            if isinstance(value, list):  # a list option with choices: each item is one of them
                for index, item in enumerate(value):
                    if item not in option["choices"]:
                        self.add(name, self.got(name, message, item), suffix=f"[{index}]")
            else:
                self.add(name, self.got(name, message, value))
        elif not isinstance(error, UnsupportedError):
            self.add(name, f"is refused by ansible-core's validator ({type(error).__name__})")

    def constraint_error(self, kind: str, group: Any, present: set[str], given: Mapping[str, Any]) -> None:
        """The finding of one constraint group that failed, worded from the group."""
        if kind in ("mutually_exclusive", "required_one_of"):
            names = [str(n) for n in group]
            exclusive = [sorted(g) for g in self.owner.get("mutually_exclusive") or []]
            needed = [sorted(g) for g in self.owner.get("required_one_of") or []]
            both = sorted(names) in exclusive and sorted(names) in needed
            if kind == "mutually_exclusive":
                how = "must have exactly one of" if both else "takes only one of"
                have = ", ".join(n for n in names if n in present)
                self.add(None, f"{how} {', '.join(names)} (got {have})")
            else:
                how = "must have exactly one of" if both else "needs one of"
                self.add(None, f"{how} {', '.join(names)} (got none of them)")
        elif kind == "required_together":
            names = [str(n) for n in group]
            have = [n for n in names if n in present]
            for name in names:
                if name not in present and name not in self.invalid:
                    together = ", ".join(names)
                    self.add(name, f"is required with {_listed(have, 'and')} ({together} go together)")
        elif kind == "required_if":
            key, wanted, needed = group[0], group[1], [str(n) for n in group[2]]
            when = f"when {key} is {wanted}"
            if len(group) > 3 and group[3]:
                self.add(None, f"needs one of {_listed(needed)} {when}")
            else:
                for name in needed:
                    if name not in present and name not in self.invalid:
                        self.add(name, f"is required {when}")
        else:  # required_by: (key, names); ansible counts a null value as missing here
            key, needed = group[0], group[1]
            for name in [needed] if isinstance(needed, str) else needed:
                if given.get(name) is None and name not in self.invalid:
                    self.add(str(name), f"is required when {key} is set")

    def nulls(self, given: Mapping[str, Any], required: Sequence[str]) -> None:
        """NULL_IS_MISSING: what ansible's `required`, `required_if` and `required_one_of` let
        through, as they count a key given as null (`url:` with no value) as given."""
        for name in required:
            if name in given and given[name] is None and name not in self.invalid:
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

    def elements(self, name: str) -> None:
        """Which items of list `name` ansible could not convert (validated one item at a time)."""
        wanted = self.options[name].get("elements")
        wanted = "str" if wanted == "path" else str(wanted)
        checker = _item_validator(wanted)
        message = f"is not a valid {_type_word(wanted)}"
        items = self.given.get(name) or []
        for index, item in enumerate(items):
            if checker.validate({"item": item}).errors.errors:
                self.add(name, self.got(name, message, item), suffix=f"[{index}]")
        if name not in self.invalid:
            self.add(name, f"holds an item that {message}")


def check(
    options: Mapping[str, Any],
    values: Mapping[str, Any],
    *,
    key: str = "",
    path: str = "",
    owner: Mapping[str, Any] | None = None,
    secret: bool = False,
) -> tuple[dict[str, Any], list[Issue]]:
    """`values` (one mapping) validated against `options`: the values converted and completed as
    ansible's validator leaves them (absent options set to their default, else None), and the issues.

    `key`: the full key of this mapping (`ovms_server_models[0]`, "" for the variables themselves);
    `path`: its option path in the specs (`ovms_server_models[]`); `owner`: the option holding these
    options (its constraints); `secret`: inside a no_log option. The rules of an option run once
    ansible accepted it and everything nested in it; those of this mapping as a whole
    (`ovms_client_profiles[]`) last."""
    owner = _TOP if owner is None else owner
    compiled = _compiled(options, owner)
    level = _Level(options, dict(values), key, path, owner, secret, compiled.no_log)
    for name, value in values.items():
        option = options.get(name)
        if option is not None and rules.shape_findings(option, value):
            level.shapes(name)
    given = {k: v for k, v in level.given.items() if k not in level.invalid}
    # a mapping (list of mappings) with nested options is validated below, mapping by mapping: here
    # ansible sees an empty one of the same type, rather than deep-copying what it would not read
    outline = dict(given)
    for name in compiled.nested & given.keys():
        value = given[name]
        if isinstance(value, dict):
            outline[name] = {}
        elif isinstance(value, list) and all(isinstance(item, dict) for item in value):
            outline[name] = []
    result = compiled.whole.validate(outline)
    level.unknown({name for name in result.unsupported_parameters if isinstance(name, str)})
    errors = result.errors.errors  # ansible's errors (the list of an AnsibleValidationErrorMultiple)
    if any(not isinstance(error, UnsupportedError) for error in errors):
        level.refused(compiled, outline, errors)
    level.nulls(given, compiled.required)
    validated: dict[str, Any] = result.validated_parameters
    for name in compiled.nested & given.keys():
        if name not in level.invalid:
            validated[name] = given[name]
    for name, option in options.items():
        value = validated.get(name)
        if name in level.invalid or value is None:
            continue
        here = _child_key(path, name)
        sub = nested(option)
        if sub is None:
            found_here = rules.run(here, value, validated, level.invalid, secret=level.hidden(name))
            for suffix, message in found_here:
                level.add(name, message, suffix)
            continue
        found: list[Issue] = []
        ckey = _child_key(key, name)
        hidden = level.hidden(name)
        if option.get("type") == "list":
            items = []
            for index, item in enumerate(value):
                done, more = check(
                    sub, item, key=f"{ckey}[{index}]", path=f"{here}[]", owner=option, secret=hidden
                )
                items.append(done)
                found += more
            validated[name] = items
        else:
            validated[name], found = check(sub, value, key=ckey, path=here, owner=option, secret=hidden)
        if found:
            level.invalid.add(name)
            level.issues += found
    if path and not level.issues:
        findings = rules.run(path, validated, {}, secret=secret)
        level.issues += [Issue(key + suffix, path, message) for suffix, message in findings]
    return validated, level.issues
