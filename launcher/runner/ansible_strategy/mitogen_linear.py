"""Mitogen's `mitogen_linear` strategy, with the collection folders listed once per run.

For every module of a collection (ovms.edge.*, community.docker.*) Mitogen's planner lists the
installed collections (`ansible.collections.list.list_collection_dirs`: a scan of every collection
path and a read of each collection's metadata, 12 ms when warm, about 60 ms in a fresh worker that
still has to import ansible.galaxy). Ansible forks a new worker per task and host, so the list was
made anew for each such task: measured on a 4-host deploy, about a third of the workers' CPU. The
folders do not change during a run: this plugin lists them once in the controller's main process,
before the workers fork, and the workers use that list. Everything else is Mitogen's strategy.
The launcher puts this folder before Mitogen's (launcher/runner/strategy.py).
"""

from __future__ import annotations

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

Base = ansible_mitogen.loaders.strategy_loader.get("linear", class_only=True)


class StrategyModule(ansible_mitogen.strategy.StrategyMixin, Base):  # type: ignore[misc,valid-type]
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        _collection_dirs()  # in the main process, before the workers fork
        super().__init__(*args, **kwargs)
