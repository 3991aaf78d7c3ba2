"""A validation problem: where (file, key, host) and what to do about it."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Problem:
    file: str
    key: str
    message: str
    fix: str = ""
    hosts: tuple[str, ...] = field(default=())

    def render(self) -> str:
        where = f"{self.file}: {self.key}" if self.key else self.file
        hosts = f" (host {', '.join(self.hosts)})" if self.hosts else ""
        text = f"{where}{hosts}: {self.message}"
        if self.fix:
            text += f"\n  fix: {self.fix}"
        return text

    def to_dict(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "key": self.key,
            "hosts": list(self.hosts),
            "message": self.message,
            "fix": self.fix,
        }


def from_error(error: Exception, *, default_file: str = "", hosts: tuple[str, ...] = ()) -> Problem:
    """A LauncherError or the client's ClientError (both carry file, key, message, fix)."""
    return Problem(
        file=str(getattr(error, "file", None) or default_file),
        key=str(getattr(error, "key", None) or ""),
        message=str(getattr(error, "message", None) or error),
        fix=str(getattr(error, "fix", None) or ""),
        hosts=hosts,
    )


def merge_hosts(problems: Iterable[Problem]) -> list[Problem]:
    """One problem per (file, key, message): a group variable's error names all its hosts once."""
    merged: dict[tuple[str, str, str], Problem] = {}
    for problem in problems:
        ident = (problem.file, problem.key, problem.message)
        seen = merged.get(ident)
        if seen is None:
            merged[ident] = problem
        else:
            hosts = seen.hosts + tuple(h for h in problem.hosts if h not in seen.hosts)
            merged[ident] = Problem(seen.file, seen.key, seen.message, seen.fix or problem.fix, hosts)
    return list(merged.values())
