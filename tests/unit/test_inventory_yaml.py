"""launcher/inventory_yaml.py: an inventory source read as ansible-core reads it, or left to ansible-core."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest
from ansible._internal._datatag._tags import Origin, TrustedAsTemplate
from ansible.parsing.dataloader import DataLoader

from launcher.inventory import load_inventory
from launcher.inventory_yaml import NotPlain, load_source

PLAIN = textwrap.dedent(
    """\
    # every scalar type of the YAML core schema, anchors, a merge key, flow and block styles
    all:
      vars:
        base: &base {port: 9000, name: "n{{ x }}"}
        when: 2026-12-07
        stamp: 2026-12-07 10:00:00
        ratio: 0.5
        big: 0x1F
        yes_no: [yes, no, true, False, ~, null]
        text: |
          two
          lines
        folded: >-
          one
          line
        empty: ""
        quoted: '{% raw %}'
      children:
        ovms_servers:
          hosts:
            srv-1:
              <<: *base
              extra: [a, {b: c}]
            "srv 2": {}
    """
)


def ansible_reads(text: str, trusted: bool) -> Any:
    tagged = TrustedAsTemplate().tag(text) if trusted else text
    return DataLoader().load(tagged, file_name="/inv/hosts.yml")


def kind(value: Any) -> type:
    """The built-in type of a value (ansible-core's tagged values subclass it)."""
    return next(c for c in type(value).__mro__ if c.__module__ in ("builtins", "datetime"))


def leaves(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return [x for k, v in value.items() for x in [k, *leaves(v)]]
    if isinstance(value, list):
        return [x for v in value for x in leaves(v)]
    return [value]


def strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in strings(k) + strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in strings(v)]
    return []


@pytest.mark.parametrize("trusted", [True, False])
def test_plain_yaml_reads_as_ansible_core_reads_it(trusted):
    ours = load_source(PLAIN, "/inv/hosts.yml", trusted_as_template=trusted)
    theirs = ansible_reads(PLAIN, trusted)
    assert ours == theirs
    assert repr(ours) == repr(theirs)  # the same values of the same kinds (date, datetime, int, ...)
    assert [kind(v) for v in leaves(ours)] == [kind(v) for v in leaves(theirs)]
    ours_strings, their_strings = strings(ours), strings(theirs)
    assert ours_strings == their_strings and len(ours_strings) > 20
    for mine, its in zip(ours_strings, their_strings, strict=True):
        assert TrustedAsTemplate.is_tagged_on(mine) is TrustedAsTemplate.is_tagged_on(its) is trusted, mine
        assert Origin.get_tag(mine).path == Origin.get_tag(its).path == "/inv/hosts.yml"


@pytest.mark.parametrize(
    "text",
    [
        "all:\n  vars:\n    secret: !unsafe '{{ not templated }}'\n",
        "all:\n  vars:\n    secret: !vault |\n      $ANSIBLE_VAULT;1.1;AES256\n      3031\n",
        "all:\n  vars:\n    a: 1\n    a: 2\n",  # ansible-core warns (or refuses, as configured)
        "all:\n  vars:\n    s: !!set {a, b}\n",
        "all:\n  vars:\n    o: !!omap [{a: 1}]\n",
        "all:\n  vars:\n    p: !!python/dict {a: 1}\n",
        '{"all": {"vars": {"x": 1}}}\n',  # JSON: ansible-core's decoder reads __ansible_unsafe and vault keys
        "  [1, 2]\n",
        "all:\n  vars: [unclosed\n",
        "all:\n  - a\n  b: c\n",
        "all:\n  vars:\n    since: 2024-13-01\n",  # a date PyYAML cannot build: ansible-core's message
    ],
    ids=[
        "unsafe",
        "vault",
        "duplicate",
        "set",
        "omap",
        "python-tag",
        "json",
        "json-list",
        "error",
        "error2",
        "date",
    ],
)
def test_what_could_read_differently_is_left_to_ansible_core(text):
    with pytest.raises(NotPlain):
        load_source(text, "/inv/hosts.yml", trusted_as_template=True)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def test_an_inventory_source_keeps_ansible_core_meaning(tmp_path):
    """Through load_inventory: a template in the source is rendered (trusted), `!unsafe` is not (left to
    ansible-core's loader), a duplicate key keeps its last value, as ansible-core keeps it."""
    inv = write(
        tmp_path / "hosts.yml",
        """
        all:
          vars:
            site_domain: store-7.example.com
          children:
            ovms_servers:
              hosts:
                srv:
                  ovms_advertise_address: "ovms.{{ site_domain }}"
                  label: first
                  label: second
            ovms_clients:
              hosts:
                cam:
                  note: !unsafe "{{ kept as written }}"
        """,
    )
    inventory = load_inventory([inv])
    server = inventory.host("srv")
    assert server.advertise_address == "ovms.store-7.example.com"
    assert server.vars["label"] == "second"
    assert inventory.host("cam").vars["note"] == "{{ kept as written }}"


def test_a_source_read_once_for_both_plugins(tmp_path, monkeypatch):
    """The `auto` plugin's look at the file and the `yaml` plugin's read share one parse."""
    import launcher.inventory_yaml as module

    calls: list[bool] = []
    original = module.load_source

    def counted(text: str, path: str, trusted_as_template: bool) -> Any:
        calls.append(trusted_as_template)
        return original(text, path, trusted_as_template)

    monkeypatch.setattr(module, "load_source", counted)
    inv = write(tmp_path / "hosts.yml", "ovms_servers:\n  hosts:\n    srv: {}\n")
    assert [s.name for s in load_inventory([inv]).servers] == ["srv"]
    assert calls == [True]
