"""Mitogen's `mitogen_linear` strategy, with the collection folders listed once per run and the
controller-side plugins loaded once per run.

For every module of a collection (ovms.edge.*, community.docker.*) Mitogen's planner lists the
installed collections (`ansible.collections.list.list_collection_dirs`: a scan of every collection
path and a read of each collection's metadata, 12 ms when warm, about 60 ms in a fresh worker that
still has to import ansible.galaxy). Ansible forks a new worker per task and host, so the list was
made anew for each such task: measured on a 4-host deploy, about a third of the workers' CPU. The
folders do not change during a run: this plugin lists them once in the controller's main process,
before the workers fork, and the workers use that list. Everything else is Mitogen's strategy.

Likewise the plugins a worker runs on the controller: action, lookup, filter and test plugins. Ansible
loads a collection's plugins from source (its collection loader compiles them; no bytecode is kept),
so each forked worker compiled the action plugin of its task and the filter files its templates
name (with module_utils they import) again. Before the first play's workers fork, this plugin loads,
through Ansible's own plugin loaders, every action and lookup plugin and the filter and test plugins
of ansible.builtin and of each collection the play's tasks name: the workers inherit them loaded. A
plugin that fails to load here is left to the worker, which reports it as it always did.

The launcher puts this folder before Mitogen's (launcher/runner/strategy.py).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import ansible.collections.list
import ansible_mitogen.loaders
import ansible_mitogen.planner
import ansible_mitogen.strategy

_COLLECTION_DIRS: tuple[str, ...] | None = None


def _collection_dirs() -> tuple[str, ...]:
    global _COLLECTION_DIRS
    if _COLLECTION_DIRS is None:
        _COLLECTION_DIRS = tuple(
            p.decode("utf-8") if isinstance(p, bytes) else str(p)
            for p in ansible.collections.list.list_collection_dirs()
        )
    return _COLLECTION_DIRS


def _load_collections(invocation: Any) -> None:
    """ansible_mitogen.planner._load_collections, from the list made once per run."""
    invocation._extra_sys_paths.update(_collection_dirs())


def patched() -> bool:
    """Whether Mitogen's planner looks the collections up through the function this plugin replaces (a
    Mitogen release that renamed or inlined it keeps its own lookup: slower, never wrong)."""
    planner = ansible_mitogen.planner
    return hasattr(planner, "_load_collections") and "_load_collections" in planner.invoke.__code__.co_names


if patched():
    ansible_mitogen.planner._load_collections = _load_collections
else:
    from ansible.utils.display import Display

    Display().warning(
        "launcher/runner/ansible_strategy/mitogen_linear.py: this Mitogen release has no "
        "planner._load_collections; the collections are listed per task as Mitogen does (slower)"
    )

_PRELOADED: set[str] = set()
BUILTIN = "ansible.builtin"


def _plugin_files(collection: str, kind: str) -> list[str]:
    """The plugin names of one kind a collection ships (one per file for actions and lookups), but
    those its routing deprecates or removes: loading one would print its deprecation in every run."""
    from ansible.utils.collection_loader._collection_finder import (
        _get_collection_metadata,
        _get_collection_path,
    )

    if collection == BUILTIN:
        import ansible.plugins

        folder = Path(ansible.plugins.__file__).parent / kind
    else:
        folder = Path(_get_collection_path(collection)) / "plugins" / kind
    routing = (_get_collection_metadata(collection).get("plugin_routing") or {}).get(kind) or {}
    retired = {name for name, how in routing.items() if "deprecation" in how or "tombstone" in how}
    return sorted(p.stem for p in folder.glob("*.py") if not p.name.startswith("_") and p.stem not in retired)


def preload(blocks: Iterable[Any]) -> None:
    """Load the controller-side plugins of ansible.builtin and of the collections these blocks' tasks
    name (namespace.collection.action), once per run, in the process the workers fork from."""
    from ansible.plugins.loader import action_loader, filter_loader, lookup_loader, test_loader

    actions = {str(task.action) for block in blocks for task in block.get_tasks()}
    collections = {BUILTIN} | {a.rsplit(".", 1)[0] for a in actions if a.count(".") >= 2}
    for collection in sorted(collections - _PRELOADED):
        _PRELOADED.add(collection)
        for loader, kind in ((action_loader, "action"), (lookup_loader, "lookup")):
            names: list[str] = []
            with contextlib.suppress(Exception):
                names = _plugin_files(collection, kind)
            for name in names:
                with contextlib.suppress(Exception):
                    loader.get(f"{collection}.{name}", class_only=True)
        for loader in (filter_loader, test_loader):
            # looking a name up loads every filter (test) file of its collection
            with contextlib.suppress(Exception):
                loader.get(f"{collection}.ovms_launcher_preload")


Base = ansible_mitogen.loaders.strategy_loader.get("linear", class_only=True)


class StrategyModule(ansible_mitogen.strategy.StrategyMixin, Base):  # type: ignore[misc,valid-type]
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        _collection_dirs()  # in the main process, before the workers fork
        super().__init__(*args, **kwargs)

    def run(self, iterator: Any, play_context: Any, *args: Any, **kwargs: Any) -> Any:
        preload(getattr(iterator, "_blocks", ()))  # before this play's workers fork
        return super().run(iterator, play_context, *args, **kwargs)
