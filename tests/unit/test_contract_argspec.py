"""launcher/validate/argspec.py places ansible-core's findings by structure, never by reading its
English: each option validated alone, each constraint group alone, the error class for the kind only,
the message worded from the spec. Every constraint kind is named by its full key, list indexes and
all; no_log values are never shown; the validators are built once per loaded spec."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from ansible.module_utils.errors import AnsibleValidationError

from launcher.validate import argspec
from launcher.validate.specs import RoleSpecs
from testbed.paths import PROJECT_ROOT

pytestmark = [pytest.mark.contract]

ARGSPEC = Path(argspec.__file__)
SPECS = RoleSpecs.load(PROJECT_ROOT / "roles").options

_STR = {"type": "str", "description": "x"}
# an entry of a list inside an entry of a list, with every constraint kind ansible knows
INNER = {
    "type": "list",
    "elements": "dict",
    "description": "x",
    "mutually_exclusive": [["a", "b"]],
    "required_one_of": [["c", "d"]],
    "required_together": [["e", "f"]],
    "required_if": [["kind", "x", ["g", "h"]], ["kind", "y", ["g", "h"], True]],
    "required_by": {"i": ["j"]},
    "options": {
        "name": {"type": "str", "required": True, "description": "x"},
        "kind": {"type": "str", "choices": ["x", "y", "z"], "description": "x"},
        "n": {"type": "int", "description": "x"},
        "tags": {"type": "list", "elements": "int", "description": "x"},
        "token": {"type": "str", "no_log": True, "description": "x"},
        "pin": {"type": "int", "no_log": True, "description": "x"},
        **{name: _STR for name in "abcdefghij"},
    },
}
SPEC = {
    "outer": {
        "type": "list",
        "elements": "dict",
        "description": "x",
        "options": {"label": _STR, "inner": INNER},
    }
}
GOOD = {"name": "entry", "c": "1"}


def _check(entry: dict) -> list[tuple[str, str]]:
    """`entry` as outer[1].inner[2], its siblings valid: the (key, message) of each issue."""
    values = {"outer": [{"inner": [GOOD]}, {"label": "l", "inner": [GOOD, GOOD, entry]}]}
    _, issues = argspec.check(SPEC, values)
    return [(issue.key, issue.message) for issue in issues]


AT = "outer[1].inner[2]"
CASES = [
    pytest.param(
        {**GOOD, "a": "1", "b": "2"}, [(AT, "takes only one of a, b (got a, b)")], id="mutually_exclusive"
    ),
    pytest.param({"name": "entry"}, [(AT, "needs one of c, d (got none of them)")], id="required_one_of"),
    pytest.param(
        {**GOOD, "e": "1"}, [(f"{AT}.f", "is required with e (e, f go together)")], id="required_together"
    ),
    pytest.param(
        {**GOOD, "kind": "x", "h": "1"}, [(f"{AT}.g", "is required when kind is x")], id="required_if-all"
    ),
    pytest.param({**GOOD, "kind": "y"}, [(AT, "needs one of g or h when kind is y")], id="required_if-any"),
    pytest.param({**GOOD, "i": "1"}, [(f"{AT}.j", "is required when i is set")], id="required_by"),
    pytest.param({"c": "1"}, [(f"{AT}.name", "is required but missing")], id="required"),
    pytest.param(
        {**GOOD, "name": None}, [(f"{AT}.name", "is required but has no value")], id="required-null"
    ),
    pytest.param(
        {**GOOD, "kind": "x", "g": None, "h": "1"},
        [(f"{AT}.g", "is required when kind is x")],
        id="required_if-null",
    ),
    pytest.param({**GOOD, "n": "many"}, [(f"{AT}.n", "is not a valid integer (got 'many')")], id="type"),
    pytest.param(
        {**GOOD, "tags": [1, "x"]}, [(f"{AT}.tags[1]", "is not a valid integer (got 'x')")], id="elements"
    ),
    pytest.param({**GOOD, "kind": "w"}, [(f"{AT}.kind", "must be one of x, y, z (got 'w')")], id="choices"),
    pytest.param({**GOOD, "colour": "red"}, [(f"{AT}.colour", "is not a known key")], id="unknown"),
    pytest.param(
        {"c": "1", "d": "2", "e": "1", "n": "x"},
        [
            (f"{AT}.n", "is not a valid integer (got 'x')"),
            (f"{AT}.name", "is required but missing"),
            (f"{AT}.f", "is required with e (e, f go together)"),
        ],
        id="several-kinds-at-once",
    ),
]


@pytest.mark.parametrize(("entry", "expected"), CASES)
def test_each_constraint_kind_is_named_by_its_full_key(entry, expected):
    assert _check(entry) == expected


@pytest.mark.parametrize(("entry", "expected"), CASES)
def test_findings_do_not_depend_on_ansibles_wording(entry, expected, monkeypatch):
    """Every message ansible-core writes replaced by the same nonsense: the same findings, as argspec.py
    reads only the class of an error, never its text."""

    def garbled(self: AnsibleValidationError, message: str = "") -> None:
        Exception.__init__(self, "xyzzy")
        self.error_message = "xyzzy"

    monkeypatch.setattr(AnsibleValidationError, "__init__", garbled)
    assert _check(entry) == expected


def test_argspec_reads_no_message_text():
    """No regular expression, no message list, no attribute holding ansible's text in argspec.py."""
    tree = ast.parse(ARGSPEC.read_text(encoding="utf-8"))
    imported = {
        alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    }
    imported |= {
        (node.module or "").split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
    }
    assert not imported & {"re", "regex", "fnmatch", "parse", "string"}, imported
    text_attributes = {"error_messages", "messages", "msg", "error_message", "args"}
    read = {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)}
    assert not read & text_attributes, read & text_attributes
    for node in ast.walk(tree):  # str(error) is ansible's text: shown at most, never split or searched
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "str"
            and node.args
        ):
            assert not (isinstance(node.args[0], ast.Name) and node.args[0].id in ("error", "e", "err")), (
                ast.unparse(node)
            )


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (
            {
                "ovms_client_profiles": [
                    {"name": "a"},
                    {"name": "b", "source": {"type": "url", "url": "https://example.com/p.tar.gz"}},
                ]
            },
            [("ovms_client_profiles[1].source.sha256", "is required when type is url")],
        ),
        (
            {
                "ovms_server_models": [
                    {"name": "a"},
                    {"name": "b", "version_policy": {"all": {}, "latest": {"num_versions": 1}}},
                ]
            },
            [
                (
                    "ovms_server_models[1].version_policy",
                    "must have exactly one of all, specific, latest (got all, latest)",
                )
            ],
        ),
        (
            {"ovms_server_models": [{"name": "a", "version_policy": {}}]},
            [
                (
                    "ovms_server_models[0].version_policy",
                    "must have exactly one of all, specific, latest (got none of them)",
                )
            ],
        ),
        (
            {"ovms_server_models": [{"name": "m", "version_policy": {"specific": {"versions": [1, "x"]}}}]},
            [
                (
                    "ovms_server_models[0].version_policy.specific.versions[1]",
                    "is not a valid integer (got 'x')",
                )
            ],
        ),
    ],
)
def test_the_roles_specs_findings_by_full_key(values, expected):
    _, issues = argspec.check(SPECS, values)
    assert [(issue.key, issue.message) for issue in issues] == expected


@pytest.mark.parametrize(
    ("values", "key"),
    [
        ({"ovms_camera_credentials": "s3cret-value"}, "ovms_camera_credentials"),
        (
            {"ovms_camera_credentials": {"username": "u", "password": ["s3cret-value"]}},
            "ovms_camera_credentials.password",
        ),
        ({"ovms_client_camera_credentials": "s3cret-value"}, "ovms_client_camera_credentials"),
    ],
)
def test_no_log_values_are_never_shown(values, key):
    _, issues = argspec.check(SPECS, values)
    assert [issue.key for issue in issues] == [key]
    assert all("s3cret" not in issue.message for issue in issues), issues


def test_a_no_log_option_of_a_nested_entry_hides_its_value():
    found = _check({**GOOD, "pin": "s3cret-value", "token": ["s3cret-value"]})
    assert sorted(key for key, _ in found) == [f"{AT}.pin", f"{AT}.token"]
    assert all("s3cret" not in message for _, message in found), found


def test_a_spec_fault_no_option_alone_reproduces_is_still_reported():
    """A kind of error no option or group alone places (here a spec's `aliases` not a list) is reported
    on the mapping, never dropped."""
    spec = {"a": {"type": "str", "aliases": "b", "description": "x"}}
    _, issues = argspec.check(spec, {"a": "x"}, key="m[0]", path="m[]")
    assert [(issue.key, issue.message.split(":")[0]) for issue in issues] == [
        ("m[0]", "is refused by ansible-core's validator (AliasError)")
    ]


def test_validators_are_built_once_per_loaded_spec(monkeypatch):
    """A thousand hosts share the validators of one spec: checking the same specs again builds none,
    refused mappings included."""
    built: list[object] = []
    real = argspec.ArgumentSpecValidator

    class Counting(real):  # type: ignore[misc, valid-type]
        def __init__(self, *args: object, **kwargs: object) -> None:
            built.append(args)
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(argspec, "ArgumentSpecValidator", Counting)
    monkeypatch.setattr(argspec, "_COMPILED", {})
    monkeypatch.setattr(argspec, "_ITEMS", {})
    entries = [c.values[0] for c in CASES]
    for entry in entries:
        _check(entry)
    assert built
    built.clear()
    for entry in entries:
        _check(entry)
    assert built == []
