"""Filters of the prechecks role."""

from __future__ import annotations

import posixpath


def prechecks_ancestors(path: str) -> list[str]:
    """The path and each of its parents up to /, nearest first."""
    current = posixpath.normpath(path)
    chain = [current]
    while current != "/":
        current = posixpath.dirname(current)
        chain.append(current)
    return chain


class FilterModule:
    def filters(self) -> dict:
        return {"prechecks_ancestors": prechecks_ancestors}
