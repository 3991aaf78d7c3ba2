"""Typed reading of a host's validated role variables for the checks across files and hosts.

A `View` is the values ansible-core's validator returned (converted to their types, every option of
the spec present: its default, else None) read as attributes, by the option names of the roles'
specs: `view.grpc_port` for `ovms_server_grpc_port`, `profile.source.type` for a nested option.
An option with nested `options` reads as a View (a list of them as a tuple of Views); a free-form
mapping (an environment) stays a mapping. A name that is no option of the spec is an AttributeError,
never a silent None. Nothing can be set.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from launcher.validate.specs import nested


def wrap(value: Any, option: Mapping[str, Any] | None) -> Any:
    sub = nested(option) if option is not None else None
    if sub is None or value is None:
        return value
    if isinstance(value, list | tuple):
        return tuple(View(item, sub) if isinstance(item, Mapping) else item for item in value)
    if isinstance(value, Mapping):
        return View(value, sub)
    return value


class View:
    """Read-only attributes over one mapping of validated values and the options that specify it."""

    __slots__ = ("_options", "_values")

    def __init__(self, values: Mapping[str, Any], options: Mapping[str, Any]) -> None:
        object.__setattr__(self, "_values", values)
        object.__setattr__(self, "_options", options)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        if name not in self._options:
            known = ", ".join(sorted(self._options))
            raise AttributeError(f"no option {name!r} in the spec (it has {known})")
        return wrap(self._values.get(name), self._options[name])

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("validated role variables are read-only")

    def __repr__(self) -> str:
        return f"View({dict(self._values)!r})"
