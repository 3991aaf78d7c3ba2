"""Which file sets a variable for a host: host_vars, group_vars or the inventory file itself.

ansible-core merges these before the launcher sees them; to name the file in an error we look the
variable up again the way Ansible layers them (host_vars first, then the host's groups, `all` last,
then variables written inline in the inventory files).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml

_VAR_EXTS = ("", ".yml", ".yaml", ".json")
EXTRA_VARS = "--extra-vars"


class _AnyTagLoader(yaml.SafeLoader):
    """Reads Ansible YAML with its custom tags (!vault, !unsafe) without failing."""


def _any_tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        return loader.construct_scalar(node)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node)
    return loader.construct_mapping(node)  # type: ignore[arg-type]


_AnyTagLoader.add_multi_constructor("!", _any_tag)


def _top_level_keys(path: Path) -> set[str]:
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_AnyTagLoader)
    except (OSError, yaml.YAMLError, UnicodeDecodeError):
        return set()
    return {str(k) for k in data} if isinstance(data, dict) else set()


def _var_files(folder: Path, name: str) -> list[Path]:
    """`group_vars/<name>`, `<name>.yml|.yaml|.json`, or every file of the folder `group_vars/<name>/`."""
    files: list[Path] = []
    for ext in _VAR_EXTS:
        candidate = folder / f"{name}{ext}"
        if candidate.is_file():
            files.append(candidate)
    sub = folder / name
    if sub.is_dir():
        files += sorted(p for p in sub.rglob("*") if p.is_file() and not p.name.startswith("."))
    return files


class VarOrigins:
    """Look up the file that sets a variable for a host (best effort: the inventory when unknown)."""

    def __init__(self, sources: Sequence[Path], extravars: Iterable[str] = ()) -> None:
        self.sources = tuple(sources)
        self.extravars = frozenset(extravars)
        self._keys: dict[Path, set[str]] = {}

    @cached_property
    def _bases(self) -> list[Path]:
        return [s if s.is_dir() else s.parent for s in self.sources]

    @cached_property
    def inventory_files(self) -> list[Path]:
        files: list[Path] = []
        for source in self.sources:
            if source.is_file():
                files.append(source)
            elif source.is_dir():
                files += sorted(
                    p
                    for p in source.iterdir()
                    if p.is_file() and not p.name.startswith(".") and p.suffix not in (".md", ".txt", ".cfg")
                )
        return files

    @property
    def label(self) -> str:
        return ", ".join(str(s) for s in self.sources)

    def _has(self, path: Path, key: str) -> bool:
        if path not in self._keys:
            self._keys[path] = _top_level_keys(path)
        return key in self._keys[path]

    def _inline(self, key: str) -> Path | None:
        pattern = re.compile(rf"(^|[\s,{{]){re.escape(key)}\s*[:=]", re.MULTILINE)
        for path in self.inventory_files:
            try:
                if pattern.search(path.read_text(encoding="utf-8")):
                    return path
            except (OSError, UnicodeDecodeError):
                continue
        return None

    def find(self, key: str, host: str | None = None, groups: Sequence[str] = ()) -> str:
        """The file (as text) that sets `key` for `host`, `--extra-vars`, or the inventory label."""
        if key in self.extravars:
            return EXTRA_VARS
        ordered_groups = [*[g for g in groups if g not in ("all", "ungrouped")][::-1], "all"]
        for base in self._bases:
            if host is not None:
                for path in _var_files(base / "host_vars", host):
                    if self._has(path, key):
                        return str(path)
            for group in ordered_groups:
                for path in _var_files(base / "group_vars", group):
                    if self._has(path, key):
                        return str(path)
        inline = self._inline(key)
        return str(inline) if inline is not None else self.label
