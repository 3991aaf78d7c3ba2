"""Command-line options checked before the run: `--limit` must select hosts, `--tags` must exist.

Ansible itself only warns about a `--limit` term that matches nothing (the host is silently
skipped) and runs nothing at all for an unknown tag: both are typing mistakes, refused here.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import yaml

from launcher.inventory import Inventory, ansible_warnings_kept
from launcher.validate.problems import Problem
from launcher.validate.variables import templated

LIMIT = "--limit"
TAGS = "--tags"
# Tags Ansible itself knows, whatever the playbooks say.
SPECIAL_TAGS = ("all", "always", "never", "tagged", "untagged")


def _close(name: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, sorted(choices), n=2, cutoff=0.5)
    return f"did you mean {' or '.join(close)}? " if close else ""


def _split(pattern: str) -> list[str]:
    from ansible.inventory.manager import split_host_pattern

    return [str(p) for p in split_host_pattern(pattern)]


def _host_list(path: str) -> list[str]:
    """The patterns of a `@FILE` term, one a line, read as ansible-core's InventoryManager.subset reads
    them (the path as given, relative to the working directory; blank lines skipped)."""
    text = Path(path).read_text(encoding="utf-8")
    return [line.strip() for line in text.split("\n") if line.strip()]


def _unknown(inventory: Inventory, term: str, names: Sequence[str]) -> Problem:
    return Problem(
        inventory.source_label,
        LIMIT,
        f"{term!r} matches no host or group of the inventory",
        f"{_close(term, names)}use host or group names of the inventory: {', '.join(names)}",
    )


def _refused(inventory: Inventory, term: str, exc: Exception) -> Problem:
    message = " ".join(str(getattr(exc, "message", None) or exc).split())
    return Problem(
        inventory.source_label,
        LIMIT,
        f"ansible-core refuses {term!r}: {message}",
        "use host or group names, wildcards (web*), ~regex, or group[i] and group[i:j] within the group",
    )


def check_limit(inventory: Inventory, pattern: str | None) -> tuple[set[str] | None, list[Problem]]:
    """The hosts `--limit PATTERN` selects (None: every host), and the terms that name no host.

    ansible-core's InventoryManager matches the pattern (its `subset`, as ansible-playbook applies
    --limit): all, host and group names, wildcards, ~regex, group[i:j], `!` and `&`, @FILE. Each term
    is also matched on its own, so one that names nothing is reported by name (Ansible only warns
    and skips it); Ansible's warnings are kept out of the output.
    """
    if pattern is None or not pattern.strip():
        return None, []
    from ansible.errors import AnsibleError

    manager = inventory.manager
    problems: list[Problem] = []
    names = sorted(set(inventory.hosts) | {g for h in inventory.hosts.values() for g in h.groups})
    terms: list[str] = []
    for raw in _split(pattern):
        if raw.startswith("@"):
            try:
                terms += _host_list(raw[1:])
            except (OSError, UnicodeDecodeError) as exc:
                problems.append(
                    Problem(
                        raw[1:],
                        LIMIT,
                        f"cannot read the host list file: {getattr(exc, 'strerror', None) or exc}",
                        "pass an existing file with one host name per line, or host names",
                    )
                )
        elif raw[1:].startswith("@") and raw[:1] in ("!", "&"):
            problems.append(
                Problem(
                    inventory.source_label,
                    LIMIT,
                    f"{raw!r}: Ansible reads a host list file only as a term of its own (@FILE)",
                    f"write the {raw[0]} in front of each line of {raw[2:]} instead",
                )
            )
        else:
            terms.append(raw)
    with ansible_warnings_kept():
        for term in terms:
            bare = term[1:] if term[:1] in ("!", "&") else term
            try:
                found = manager.get_hosts(bare, ignore_limits=True, ignore_restrictions=True)
            except AnsibleError as exc:
                problems.append(_refused(inventory, bare, exc))
                continue
            # only the inventory's hosts count: ansible matches a `localhost` it lacks to an implicit one
            if not {host.name for host in found} & set(inventory.hosts):
                problems.append(_unknown(inventory, bare, names))
        if problems:
            return None, problems
        try:
            manager.subset(pattern)
            selected = {str(host.name) for host in manager.get_hosts("all")} & set(inventory.hosts)
        except AnsibleError as exc:
            return None, [_refused(inventory, pattern, exc)]
        finally:
            manager.subset(None)
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
