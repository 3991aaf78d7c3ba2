"""An inventory source's YAML read with libyaml's parser and PyYAML's safe constructor: the same data
ansible-core's loader gives the inventory plugins for a plain file, in a fraction of its time.

ansible-core's own YAML constructor tags every scalar, mapping and sequence with its origin (file, line
and column); on a 1,000-host inventory that is most of `launcher validate`'s parse. Here a string gets
the tags that change what it means: trust as a template when the caller asks for it, and the file's
origin (without the line); other values are PyYAML's safe constructor's plain ones (equal to ansible-
core's, which are the same types with the origin tag added), so an error about them names no line.
Whatever could read differently is refused with NotPlain and left to ansible-core's loader: text that
may be JSON (ansible-core reads it with its own decoder), a tag other than the YAML core schema's
(`!unsafe`, `!vault`, ...), `!!omap`, `!!pairs` and `!!set` (deprecated or tagged by ansible-core), a
duplicate key (which ansible-core warns about or refuses), a YAML error (ansible-core's message names
the line)."""

from __future__ import annotations

from typing import Any

import yaml
from ansible._internal._datatag._tags import Origin, TrustedAsTemplate
from ansible.module_utils._internal._datatag import AnsibleTagHelper

_Loader: type = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class NotPlain(Exception):
    """The text needs ansible-core's own loader."""


class _SourceLoader(_Loader):  # type: ignore[misc, valid-type]
    tags: tuple[Any, ...] = ()

    def construct_yaml_str(self, node: yaml.ScalarNode) -> str:
        return AnsibleTagHelper.tag(self.construct_scalar(node), self.tags)

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        mapping = super().construct_mapping(node, deep)
        if len(mapping) != len(node.value):  # a duplicate key, or a merge key ansible-core checks itself
            raise NotPlain("duplicate key")
        return mapping

    def refuse(self, node: yaml.Node) -> None:
        raise NotPlain(f"tag {node.tag}")


_SourceLoader.add_constructor("tag:yaml.org,2002:str", _SourceLoader.construct_yaml_str)
for _tag in ("omap", "pairs", "set"):
    _SourceLoader.add_constructor(f"tag:yaml.org,2002:{_tag}", _SourceLoader.refuse)
_SourceLoader.add_constructor(None, _SourceLoader.refuse)


def load_source(text: str, path: str, trusted_as_template: bool) -> Any:
    """The data of an inventory source's text (`path` names it in the strings' origin); NotPlain when
    ansible-core's loader must read it."""
    if text.lstrip()[:1] in ("{", "["):
        raise NotPlain("may be JSON")
    loader = _SourceLoader(str(text))
    loader.tags = (Origin(path=path), TrustedAsTemplate()) if trusted_as_template else (Origin(path=path),)
    try:
        return loader.get_single_data()
    except Exception as exc:  # a YAML error, a date or number PyYAML cannot build: ansible-core's message
        raise NotPlain(str(exc)) from exc
    finally:
        loader.dispose()
