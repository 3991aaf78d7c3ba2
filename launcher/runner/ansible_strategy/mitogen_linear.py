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

And the tasks a worker would only cost (a fork and a worker: about 20 ms of the controller's CPU per
task and host, bench/notes.md). A task whose `when` is false on a host (no loop, no delegation) is
skipped here, in the main process, with the result a worker sends for it (the same steps as
ansible-core's TaskExecutor up to its condition: play context, magic variables, the condition,
no_log). A task that never reaches its host (an include, or an action plugin that needs no connection:
set_fact, assert, debug, fail, the collection's ovms_check, ...) and does not wait (no until, retries,
async, timeout, loop pause) nor delegate runs here through ansible-core's own TaskExecutor, in a task
context as a worker has, on copies of the task and of the variables. Their results are held until
every host of the task is queued, as a worker's arrive after it (a later host does not see an earlier
host's result of the same task). A task that takes longer than SLOW_S here goes to workers for its
other hosts (they run in parallel there). Anything else (a true or failing condition, a warning while
evaluating it, a throttle, an ansible-core without the pieces used) goes to a worker as before.

The launcher puts this folder before Mitogen's (launcher/runner/strategy.py).
"""

from __future__ import annotations

import contextlib
import copy
import datetime
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import ansible.collections.list
import ansible_mitogen.loaders
import ansible_mitogen.planner
import ansible_mitogen.strategy

try:  # ansible-core 2.19's result record; without it every task goes to a worker
    from ansible.executor.task_result import _RawTaskResult
except ImportError:  # pragma: no cover - another ansible-core
    _RawTaskResult = None

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


def tagged_scalar_types() -> tuple[type, ...]:
    """ansible-core 2.19's tagged str, bytes, int, float and dates (its own subclasses of each), or ()."""
    try:
        from ansible.module_utils._internal._datatag import AnsibleTaggedObject
    except ImportError:  # pragma: no cover - another ansible-core
        return ()
    kinds = (str, bytes, int, float, datetime.date, datetime.time)  # datetime is a date
    mapping = getattr(AnsibleTaggedObject, "_tagged_type_map", {})
    return tuple(tagged for native, tagged in mapping.items() if issubclass(native, kinds))


def copy_tagged_scalars_as_themselves() -> tuple[type, ...]:
    """ansible-core 2.19 tags the strings and numbers it loads (where each came from, whether it is a
    trusted template) by making them instances of its own subclasses of str, int, ...; Python's
    deepcopy does not know those are immutable and rebuilds each through __reduce_ex__, about 40 times
    slower than the plain value it returns as itself. ansible-core deep-copies every cached file it
    hands out again (DataLoader.load_from_file: each role and task file of each include) and the
    variables of each task and host. A tagged scalar is as immutable as its plain value (its tags are
    set when it is made, never after): deepcopy now returns it as itself, as it does a str. Containers
    are still copied. In this process and the workers it forks only (bench/notes.md, seventh pass)."""
    kinds = tagged_scalar_types()
    for kind in kinds:
        if getattr(kind, "__deepcopy__", None) is None:
            copy._deepcopy_dispatch[kind] = copy._deepcopy_atomic  # type: ignore[attr-defined]
    return kinds


copy_tagged_scalars_as_themselves()

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


def skip_result(
    loader: Any, host: Any, task: Any, task_vars: dict[str, Any], play_context: Any
) -> dict[str, Any] | None:
    """The result a worker would send for this task on this host when its `when` is false (ansible-core's
    TaskExecutor: run, _execute, _execute_internal up to the condition), or None when a worker must run it:
    a loop, a delegation, no condition, a true one, an error or a warning on the way. Reads the task and
    the variables, changes neither."""
    if not task.when or task.loop_with or task.loop is not None or task.delegate_to:
        return None
    try:
        from ansible._internal._display_utils import DeferredWarningContext
        from ansible._internal._templating._engine import TemplateEngine

        job_vars = dict(task_vars)
        # TaskExecutor._get_loop_items sets it before the condition
        search_path = list(task.get_search_path())
        if loader.get_basedir() not in search_path:
            search_path.append(loader.get_basedir())
        job_vars["ansible_search_path"] = search_path
        templar = TemplateEngine(loader=loader, variables=job_vars)
        with DeferredWarningContext(variables=job_vars) as warnings:
            tempvars = job_vars.copy()
            context = play_context.set_task_and_variable_override(
                task=task, variables=job_vars, templar=templar
            )
            context.post_validate(templar=templar)
            if not context.remote_addr:
                context.remote_addr = host.address
            context.update_vars(tempvars)
            condition: dict[str, Any] = {}
            if task._resolve_conditional(task.when, tempvars, result_context=condition):
                return None
            result = {"changed": False, "skipped": True, "skip_reason": "Conditional result was False"}
            result |= condition
            task.update_result_no_log(templar, result)
        if warnings.get_warnings() or warnings.get_deprecation_warnings():
            return None
    except Exception:  # the worker evaluates it again and reports the error as it always did
        return None
    return result


_NEEDS_HOST: dict[tuple[str, tuple[str, ...]], bool] = {}
#: seconds a task may take in the main process before its other hosts go to workers (in parallel)
SLOW_S = 0.25


def controller_only(task: Any) -> bool:
    """Whether the task never reaches its host and returns at once: an include, or an action plugin that
    says it needs no connection (ansible.builtin's set_fact, assert, debug, fail, ..., the collection's
    ovms_check); and nothing in it waits (no until, retries, async, timeout, loop pause) or runs elsewhere
    (delegate_to)."""
    from ansible import constants as C

    if task.delegate_to or task.until or task.retries is not None or task.async_val or task.timeout:
        return False
    if task.loop_control is not None and task.loop_control.pause:
        return False
    action = str(task.action)
    if action in C._ACTION_INCLUDE_TASKS or action in C._ACTION_INCLUDE_ROLE:
        return True
    key = (action, tuple(task.collections or ()))
    if key not in _NEEDS_HOST:
        needs = True
        with contextlib.suppress(Exception):
            # the handler TaskExecutor picks: a module's own action plugin, else the action of that name
            from ansible.plugins.loader import action_loader, module_loader

            module = module_loader.find_plugin_with_context(action, collection_list=task.collections)
            name = module.action_plugin if module.resolved and module.action_plugin else action
            handler = action_loader.get(name, class_only=True, collection_list=task.collections)
            needs = handler is None or getattr(handler, "_requires_connection", True) is not False
        _NEEDS_HOST[key] = needs
    return not _NEEDS_HOST[key]


def run_here(
    host: Any,
    task: Any,
    task_vars: dict[str, Any],
    play_context: Any,
    loader: Any,
    variables: Any,
    final_q: Any,
) -> tuple[Any, dict[str, Any]]:
    """Run the task as a worker would (ansible-core's TaskExecutor), in this process: on a copy of the task
    and of its parents (the executor validates and templates them) and of the variables (it adds to
    them). Returns the task as run (its fields go with the result) and the result."""
    from ansible._internal._task import TaskContext
    from ansible.executor.task_executor import TaskExecutor
    from ansible.plugins.loader import get_plugin_loader_namespace

    copy = task.copy(exclude_tasks=True)
    try:
        executor = TaskExecutor(
            host,
            copy,
            dict(task_vars),
            play_context,
            loader,
            get_plugin_loader_namespace(),
            final_q,
            variables,
        )
        with TaskContext(copy):  # as WorkerProcess.run has (with_first_found reads it)
            result = executor.run()
    except Exception as error:  # what a worker's TaskExecutor.run reports for an unexpected failure
        result = {"failed": True, "msg": f"Unexpected failure during task execution: {error}"}
    return copy, result


Base = ansible_mitogen.loaders.strategy_loader.get("linear", class_only=True)


class StrategyModule(ansible_mitogen.strategy.StrategyMixin, Base):  # type: ignore[misc,valid-type]
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        _collection_dirs()  # in the main process, before the workers fork
        super().__init__(*args, **kwargs)
        self._held: list[Any] = []  # results made in this process, not yet on the results queue
        self._slow: set[str] = set()  # tasks (uuid) that took longer than SLOW_S here

    def run(self, iterator: Any, play_context: Any, *args: Any, **kwargs: Any) -> Any:
        preload(getattr(iterator, "_blocks", ()))  # before this play's workers fork
        return super().run(iterator, play_context, *args, **kwargs)

    def _queue_task(self, host: Any, task: Any, task_vars: dict[str, Any], play_context: Any) -> None:
        # a throttle is StrategyBase's to check and apply; a task found slow here goes to workers
        if _RawTaskResult is None or task.throttle or task._uuid in self._slow:
            return super()._queue_task(host, task, task_vars, play_context)
        started = time.perf_counter()
        # a task that never reaches its host runs here whole (its condition included, by TaskExecutor
        # itself); any other is only skipped here, when its condition is false
        here = controller_only(task)
        skipped = None if here else skip_result(self._loader, host, task, task_vars, play_context)
        if not here and skipped is None:
            return super()._queue_task(host, task, task_vars, play_context)
        # what StrategyBase._queue_task and a worker do, but the fork: the cache entry the result is matched
        # with, the start callback, the result (held until the task's hosts are all queued)
        self._queued_task_cache[(host.name, task._uuid)] = {
            "host": host,
            "task": task,
            "task_vars": task_vars,
            "play_context": play_context,
        }
        self._tqm.send_callback("v2_runner_on_start", host, task)
        ran, result = task, skipped
        if here:
            ran, result = run_here(
                host, task, task_vars, play_context, self._loader, self._variable_manager, self._final_q
            )
        if time.perf_counter() - started > SLOW_S:
            self._slow.add(task._uuid)
        self._held.append(
            _RawTaskResult(host=host, task=ran, return_data=result, task_fields=ran.dump_attrs())
        )
        self._pending_results += 1
        return None

    def _wait_on_pending_results(self, iterator: Any) -> Any:
        """Every host of the task is queued: the results made here go on the results queue (after any
        loop item's callback the executor put there), then StrategyBase waits for them all."""
        held, self._held = self._held, []
        for result in held:
            self._final_q.send_task_result(result)
        return super()._wait_on_pending_results(iterator)
