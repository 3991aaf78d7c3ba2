"""Command-line options checked before the run: `--limit` must select hosts, `--tags` must exist.

Ansible itself only warns about a `--limit` term that matches nothing (the host is silently
skipped) and runs nothing at all for an unknown tag: both are typing mistakes, refused here.
"""

from __future__ import annotations

import difflib
import fnmatch
import re
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import yaml

from launcher.inventory import Inventory
from launcher.validate.problems import Problem
from launcher.validate.variables import templated

LIMIT = "--limit"
TAGS = "--tags"
# Tags Ansible itself knows, whatever the playbooks say.
SPECIAL_TAGS = ("all", "always", "never", "tagged", "untagged")
_SUBSCRIPT = re.compile(r"^(?P<base>.+?)\[(?P<start>-?[0-9]+)(?::(?P<end>-?[0-9]*))?\]$")


def _close(name: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, sorted(choices), n=2, cutoff=0.5)
    return f"did you mean {' or '.join(close)}? " if close else ""


def _split(pattern: str) -> list[str]:
    from ansible.inventory.manager import split_host_pattern

    return [str(p) for p in split_host_pattern(pattern)]


def _matches(term: str, inventory: Inventory) -> set[str] | None:
    """Hosts a single --limit term names (Ansible's rules: all, host, group, fnmatch, ~regex, group[i]);
    None when the term names nothing."""
    hosts = inventory.hosts
    groups: dict[str, set[str]] = {}
    for host in hosts.values():
        for group in host.groups:
            groups.setdefault(group, set()).add(host.name)
    if term in ("all", "*"):
        return set(hosts)
    subscript = _SUBSCRIPT.match(term)
    if subscript and subscript["base"] in groups:
        members = sorted(groups[subscript["base"]])
        start = int(subscript["start"])
        end = subscript["end"]
        if end is None:
            chosen = members[start : start + 1] if -len(members) <= start < len(members) else []
        else:
            chosen = members[start : (int(end) + 1 if end not in ("", "-1") else None)]
        return set(chosen) or None
    if term.startswith("~"):
        try:
            regex = re.compile(term[1:])
        except re.error:
            return None
        found = {h for h in hosts if regex.match(h)}
        for group, members in groups.items():
            if regex.match(group):
                found |= members
        return found or None
    if any(c in term for c in "*?["):
        found = {h for h in hosts if fnmatch.fnmatchcase(h, term)}
        for group, members in groups.items():
            if fnmatch.fnmatchcase(group, term):
                found |= members
        return found or None
    if term in groups:
        return set(groups[term])
    if term in hosts:
        return {term}
    return None


def _from_file(term: str) -> Iterator[str]:
    path = Path(term[1:]).expanduser()
    text = path.read_text(encoding="utf-8")
    yield from (line.strip() for line in text.splitlines() if line.strip())


def check_limit(inventory: Inventory, pattern: str | None) -> tuple[set[str] | None, list[Problem]]:
    """The hosts `--limit PATTERN` selects (None: every host), and the terms that name no host."""
    if pattern is None or not pattern.strip():
        return None, []
    problems: list[Problem] = []
    names = sorted(set(inventory.hosts) | {g for h in inventory.hosts.values() for g in h.groups})
    selected: set[str] = set()
    required: list[set[str]] = []
    excluded: set[str] = set()
    for raw in _split(pattern):
        op, term = (raw[0], raw[1:]) if raw[:1] in ("!", "&") else ("", raw)
        if term.startswith("@"):
            try:
                found: set[str] | None = set()
                for line in _from_file(term):
                    found = (found or set()) | (_matches(line, inventory) or set())
            except (OSError, UnicodeDecodeError) as exc:
                problems.append(
                    Problem(
                        term[1:],
                        LIMIT,
                        f"cannot read the host list file: {getattr(exc, 'strerror', None) or exc}",
                        "pass an existing file with one host name per line, or host names",
                    )
                )
                continue
        else:
            found = _matches(term, inventory)
        if not found:
            problems.append(
                Problem(
                    inventory.source_label,
                    LIMIT,
                    f"{term!r} matches no host or group of the inventory",
                    f"{_close(term, names)}use host or group names of the inventory: {', '.join(names)}",
                )
            )
            continue
        if op == "!":
            excluded |= found
        elif op == "&":
            required.append(found)
        else:
            selected |= found
    if problems:
        return None, problems
    if not selected and (required or excluded):
        selected = set(inventory.hosts)
    for group in required:
        selected &= group
    selected -= excluded
    if not selected:
        problems.append(
            Problem(
                inventory.source_label,
                LIMIT,
                f"{pattern!r} leaves no host to run on",
                "check the `!` (exclude) and `&` (intersect) terms of the pattern",
            )
        )
    return selected, problems


def _tags_of(node: Any) -> Iterator[Any]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "tags":
                yield value
            else:
                yield from _tags_of(value)
    elif isinstance(node, list):
        for item in node:
            yield from _tags_of(item)


def playbook_tags(roots: Sequence[Path]) -> set[str] | None:
    """Every tag written in the YAML files under `roots` (playbooks, roles); None when one is templated
    (then any tag may exist at run time)."""
    found: set[str] = set()
    for root in roots:
        files = [root] if root.is_file() else sorted(root.rglob("*.yml")) + sorted(root.rglob("*.yaml"))
        for path in files:
            if "molecule" in path.parts:
                continue
            try:
                data = yaml.safe_load(path.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, yaml.YAMLError):
                continue
            for value in _tags_of(data):
                items = value.split(",") if isinstance(value, str) else value
                for item in items if isinstance(items, list) else [items]:
                    if templated(item):
                        return None
                    if isinstance(item, str | int) and str(item).strip():
                        found.add(str(item).strip())
    return found


def check_tags(tags: str | None, playbook: Path, roles_dir: Path) -> list[Problem]:
    """Every `--tags` entry is a tag of the playbooks or roles (or one of Ansible's own)."""
    if tags is None or not tags.strip():
        return []
    known = playbook_tags([playbook.parent, roles_dir])
    if known is None:
        return []
    problems: list[Problem] = []
    for tag in (t.strip() for t in tags.split(",")):
        if not tag or tag in known or tag in SPECIAL_TAGS:
            continue
        if known:
            fix = f"{_close(tag, known)}use one of: {', '.join(sorted(known))} (or drop --tags)"
        else:
            fix = "drop --tags: the playbooks and roles define no tags, each role runs as a whole"
        problems.append(
            Problem(
                str(playbook),
                TAGS,
                f"no play, role or task has the tag {tag!r}: Ansible would run nothing",
                fix,
            )
        )
    return problems


def check_run_options(
    inventory: Inventory, limit: str | None, tags: str | None, playbook: Path, roles_dir: Path
) -> tuple[set[str] | None, list[Problem]]:
    """A run's `--limit` and `--tags`: the hosts selected (None: every host) and every problem."""
    selected, problems = check_limit(inventory, limit)
    return selected, problems + check_tags(tags, playbook, roles_dir)
