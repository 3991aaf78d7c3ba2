"""The launcher's Ansible strategy: Mitogen when installed, a built-in one on request."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from launcher.runner.execute import runner_envvars
from launcher.runner.strategy import (
    MITOGEN_STRATEGY,
    OWN_STRATEGY_DIR,
    STRATEGY_ENV,
    mitogen_strategy_dir,
    strategy_envvars,
)


def test_mitogen_is_installed_with_the_launcher_and_chosen_by_default(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv(STRATEGY_ENV, raising=False)
    folder = mitogen_strategy_dir()
    assert folder is not None, "mitogen is a dependency of the launcher (pyproject.toml)"
    assert (folder / f"{MITOGEN_STRATEGY}.py").is_file()
    env = strategy_envvars()
    assert env == {
        "ANSIBLE_STRATEGY_PLUGINS": f"{OWN_STRATEGY_DIR}:{folder}",
        "ANSIBLE_STRATEGY": MITOGEN_STRATEGY,
    }
    # the launcher's own mitogen_linear (Mitogen's, the collection folders listed once) comes first
    assert (OWN_STRATEGY_DIR / f"{MITOGEN_STRATEGY}.py").is_file()


def test_a_builtin_strategy_on_request_needs_no_plugin_path(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv(STRATEGY_ENV, "linear")
    assert strategy_envvars() == {"ANSIBLE_STRATEGY": "linear"}


def test_without_mitogen_ansible_cfg_decides(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv(STRATEGY_ENV, raising=False)
    monkeypatch.setattr("launcher.runner.strategy.mitogen_strategy_dir", lambda: None)
    assert strategy_envvars() == {}


def test_runner_environment_carries_the_strategy(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setenv(STRATEGY_ENV, "free")
    env = runner_envvars(tmp_path / "ansible.cfg")
    assert env["ANSIBLE_STRATEGY"] == "free"
    assert env["ANSIBLE_CONFIG"] == str(tmp_path / "ansible.cfg")


def test_the_own_strategy_replaces_mitogens_collection_lookup():
    """The plugin's saving depends on a private function of Mitogen's planner: it must still exist and
    be what invoke() calls, else the plugin warns and leaves Mitogen's lookup alone."""
    import importlib.util

    import ansible_mitogen.planner

    spec = importlib.util.spec_from_file_location(
        "ovms_launcher_mitogen_linear", OWN_STRATEGY_DIR / f"{MITOGEN_STRATEGY}.py"
    )
    assert spec is not None and spec.loader is not None
    plugin = importlib.util.module_from_spec(spec)
    original = ansible_mitogen.planner._load_collections
    try:
        spec.loader.exec_module(plugin)
        assert plugin.patched(), "Mitogen's planner no longer calls _load_collections: update the plugin"
        assert ansible_mitogen.planner._load_collections is plugin._load_collections
    finally:
        ansible_mitogen.planner._load_collections = original


def _run_script(
    tmp_path: Path, script: str, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    from launcher.content import content

    source = content()
    path = tmp_path / "script.py"
    path.write_text(script)
    environment = {
        **runner_envvars(source.ansible_cfg),
        "ANSIBLE_COLLECTIONS_PATH": str(source.collections_path),
        "HOME": str(tmp_path),
        "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
        **(env or {}),
    }
    return subprocess.run(
        [sys.executable, str(path), *args], env=environment, cwd=tmp_path, capture_output=True, text=True,
        timeout=180, check=False,
    )  # fmt: skip


PRELOAD_SCRIPT = r"""
import importlib.util, json, os, sys
from ansible.plugins.loader import init_plugin_loader
init_plugin_loader()
from ansible.plugins.loader import action_loader, filter_loader, lookup_loader
spec = importlib.util.spec_from_file_location("ovms_launcher_mitogen_linear", sys.argv[1])
plugin = importlib.util.module_from_spec(spec)
spec.loader.exec_module(plugin)

from ansible.playbook.block import Block
from ansible.playbook.task import Task

def task(action):
    made = Task()
    made.action = action
    return made

fqcn = sys.argv[2]
block = Block()
block.block, block.rescue = [task("ansible.builtin.copy")], [task(fqcn + ".ovms_check")]
plugin.preload([block])
loaded = set(sys.modules)
read, write = os.pipe()
if os.fork() == 0:  # what a worker loads for an action, a lookup and a filter of the collection
    action_loader.get(fqcn + ".ovms_check", class_only=True)
    action_loader.get("ansible.builtin.copy", class_only=True)
    lookup_loader.get(fqcn + ".ovms_media")
    filter_loader.get(fqcn + ".ovms_client_checked")
    os.write(write, json.dumps(sorted(m for m in set(sys.modules) - loaded if ".plugins." in m)).encode())
    os._exit(0)
os.close(write)
with os.fdopen(read, "rb") as pipe:
    child = json.loads(pipe.read() or b"null")
os.wait()
own = f"ansible_collections.{fqcn}.plugins."
print(json.dumps({
    "child": child,
    "action": own + "action.ovms_check" in loaded,
    "filters": sorted(m.rsplit(".", 1)[-1] for m in loaded if m.startswith(own + "filter.")),
}))
"""


def test_the_own_strategy_loads_the_plays_plugins_before_the_workers_fork(tmp_path: Path):
    """A forked worker finds the action, lookup and filter plugins of the play's collections (and
    ansible.builtin's) already loaded: it compiles none of them again."""
    from launcher.content import content

    done = _run_script(
        tmp_path, PRELOAD_SCRIPT, str(OWN_STRATEGY_DIR / f"{MITOGEN_STRATEGY}.py"), content().fqcn
    )
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found["action"] and "ovms_client" in found["filters"] and "ovms_common" in found["filters"]
    assert found["child"] == [], f"a worker loaded these plugins itself: {found['child']}"


COPY_SCRIPT = r"""
import copy, importlib.util, json, sys
from ansible.parsing.dataloader import DataLoader
from ansible.module_utils._internal._datatag import AnsibleTagHelper
from ansible._internal._datatag._tags import Origin, TrustedAsTemplate

def tagged(value, line):
    return TrustedAsTemplate().tag(Origin(path="/roles/x/tasks/main.yml", line_num=line).tag(value))

loaded = {"name": tagged("Run {{ x }}", 1), "n": tagged(3, 2), "f": tagged(1.5, 3), "l": [tagged("a", 4)]}
before = copy.deepcopy(loaded)
spec = importlib.util.spec_from_file_location("ovms_launcher_mitogen_linear", sys.argv[1])
plugin = importlib.util.module_from_spec(spec)
spec.loader.exec_module(plugin)
after = copy.deepcopy(loaded)

with open(sys.argv[2], "w") as handle:
    handle.write("- name: Run {{ x }}\n  vars: {n: 3, l: [a]}\n")
data_loader = DataLoader()
first, second = data_loader.load_from_file(sys.argv[2]), data_loader.load_from_file(sys.argv[2])
first[0]["vars"]["l"].append("b")  # a copy handed out earlier is changed: the cached data is not
tags = lambda v: sorted(type(t).__name__ for t in AnsibleTagHelper.tags(v))
print(json.dumps({
    "kinds": sorted(k.__name__ for k in plugin.tagged_scalar_types()),
    "same_before": before["name"] is loaded["name"],
    "same_after": [after[k] is loaded[k] for k in ("name", "n", "f")] + [after["l"][0] is loaded["l"][0]],
    "equal": after == loaded and before == loaded,
    "new_list": after["l"] is not loaded["l"],
    "tags": [tags(after["name"]), tags(after["n"])],
    "reloaded": data_loader.load_from_file(sys.argv[2])[0]["vars"]["l"],
    "second": second[0]["vars"]["l"],
    "second_tags": [tags(first[0]["name"]), tags(second[0]["name"])],
}))
"""


def test_the_own_strategy_copies_tagged_scalars_as_themselves(tmp_path: Path):
    """With the plugin loaded, a deep copy of ansible-core's tagged strings and numbers is the value
    itself (as for a plain str), tags and all; containers are still new, and a copy DataLoader hands
    out can be changed without changing its cache or another copy."""
    done = _run_script(
        tmp_path, COPY_SCRIPT, str(OWN_STRATEGY_DIR / f"{MITOGEN_STRATEGY}.py"), str(tmp_path / "tasks.yml")
    )
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert {"_AnsibleTaggedStr", "_AnsibleTaggedInt", "_AnsibleTaggedFloat"} <= set(found["kinds"])
    assert found["same_before"] is False, "without the plugin a tagged str is rebuilt (the cost it saves)"
    assert found["same_after"] == [True, True, True, True] and found["equal"] and found["new_list"]
    assert found["tags"] == [["Origin", "TrustedAsTemplate"], ["Origin", "TrustedAsTemplate"]]
    assert found["reloaded"] == ["a"] and found["second"] == ["a"]
    assert found["second_tags"] == [["Origin"], ["Origin"]]


SKIP_SCRIPT = r"""
import copy, importlib.util, json, os, sys
from ansible.plugins.loader import init_plugin_loader
init_plugin_loader()
spec = importlib.util.spec_from_file_location("ovms_launcher_mitogen_linear", sys.argv[1])
plugin = importlib.util.module_from_spec(spec)
spec.loader.exec_module(plugin)

from ansible.executor.task_executor import TaskExecutor
from ansible.inventory.manager import InventoryManager
from ansible.parsing.dataloader import DataLoader
from ansible.playbook import Playbook
from ansible.playbook.play_context import PlayContext
from ansible.vars.manager import VariableManager

loader = DataLoader()
inventory = InventoryManager(loader=loader, sources="localhost,")
variables = VariableManager(loader=loader, inventory=inventory)
variables._extra_vars = {"off": False, "on": True, "secret": True}
play = Playbook.load(sys.argv[2], variable_manager=variables, loader=loader).get_plays()[0]
host = inventory.get_host("localhost")
context = PlayContext(play=play)
out = {}
for block in play.compile():
    for task in block.get_tasks():
        if task.implicit:
            continue
        task_vars = variables.get_vars(play=play, host=host, task=task)
        before = {k: copy.deepcopy(v) for k, v in task_vars.items() if k not in ("hostvars", "vars")}
        mine = plugin.skip_result(loader, host, task, task_vars, context)
        assert {k: v for k, v in task_vars.items() if k not in ("hostvars", "vars")} == before
        # ansible-core's own executor, on a copy (it squashes and validates its task)
        executor = TaskExecutor(host, task.copy(), dict(task_vars), context, loader, None, None, variables)
        theirs = executor.run()
        out[task.name] = {"mine": mine, "theirs": {k: v for k, v in theirs.items() if k != "exception"}}
print(json.dumps(out, default=str))
"""

SKIP_PLAY = [
    {
        "hosts": "all",
        "gather_facts": False,
        "vars": {"count": 3},
        "tasks": [
            {"name": "false", "ansible.builtin.debug": {"msg": "x"}, "when": "off"},
            {"name": "list", "ansible.builtin.debug": {"msg": "x"}, "when": ["on", "count > 5", "off"]},
            {"name": "no_log", "ansible.builtin.debug": {}, "when": "off", "no_log": "{{ secret }}"},
            {"name": "include", "ansible.builtin.include_tasks": "nowhere.yml", "when": "off"},
            {"block": [{"name": "in block", "ansible.builtin.debug": {}, "when": "on"}], "when": "off"},
            {"name": "true", "ansible.builtin.debug": {"msg": "x"}, "when": "on"},
            {"name": "none", "ansible.builtin.debug": {"msg": "x"}},
            {"name": "undefined", "ansible.builtin.debug": {"msg": "x"}, "when": "nothing_defined"},
            {"name": "loop", "ansible.builtin.debug": {"msg": "x"}, "when": "off", "loop": [1]},
            {"name": "delegated", "ansible.builtin.debug": {}, "when": "off", "delegate_to": "localhost"},
        ],
    }
]


def test_a_task_skipped_in_the_main_process_has_the_result_a_worker_gives(tmp_path: Path):
    """skip_result gives exactly what ansible-core's TaskExecutor returns for a false `when` (one
    condition, a list, no_log, an include, a block's condition), and leaves to a worker what is not a
    plain skip: a true condition, none, an undefined variable, a loop, a delegation."""
    book = tmp_path / "play.yml"
    book.write_text(json.dumps(SKIP_PLAY))
    done = _run_script(tmp_path, SKIP_SCRIPT, str(OWN_STRATEGY_DIR / f"{MITOGEN_STRATEGY}.py"), str(book))
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout.strip().splitlines()[-1])
    skipped = {"false", "list", "no_log", "include", "in block"}
    assert set(found) == {task["name"] for task in SKIP_PLAY[0]["tasks"] if "name" in task} | {"in block"}
    for name, results in found.items():
        if name in skipped:
            assert results["mine"] == results["theirs"], name
            assert results["mine"]["skipped"] is True
        else:
            assert results["mine"] is None, name
    assert found["list"]["mine"]["false_condition"] == "count > 5"
    assert found["no_log"]["mine"]["_ansible_no_log"] is True
    assert found["delegated"]["theirs"]["skipped"] is True  # a skip, but left to the worker


RUN_SCRIPT = r"""
import sys
from ansible.executor.process.worker import WorkerProcess
started = []
_start = WorkerProcess.start
def start(self):
    started.append(self._task.get_name())
    return _start(self)
WorkerProcess.start = start
from ansible.cli.playbook import main
sys.argv = ["ansible-playbook", *sys.argv[1:]]
try:
    main()
except SystemExit as done:
    code = done.code
with open("workers.txt", "w") as out:
    out.write("\n".join(started))
sys.exit(code)
"""

RUN_PLAY = [
    {
        "hosts": "all",
        "gather_facts": False,
        "tasks": [
            {"name": "skipped", "ansible.builtin.debug": {"msg": "x"}, "when": "off", "register": "first"},
            {
                "block": [
                    {"name": "in block", "ansible.builtin.debug": {"msg": "x"}},
                    {"name": "in block too", "ansible.builtin.fail": {"msg": "x"}},
                ],
                "when": "off",
            },
            {"name": "no include", "ansible.builtin.include_tasks": "nowhere.yml", "when": "off"},
            # a module a host skips: skipped here, without the worker it would need to run
            {"name": "no stat", "ansible.builtin.stat": {"path": "/"}, "when": "off", "register": "unread"},
            {"name": "set", "ansible.builtin.set_fact": {"second": "{{ first }}"}, "when": "on"},
            {"name": "host", "ansible.builtin.stat": {"path": "/"}, "register": "root"},
            {"name": "each", "ansible.builtin.include_tasks": "included.yml", "loop": [1, 2]},
            # a lookup that needs the task context a worker has
            {
                "name": "found",
                "ansible.builtin.include_vars": "{{ item }}",
                "with_first_found": ["none.yml", "vars.yml"],
            },
            {"name": "retried", "ansible.builtin.set_fact": {"tried": 1}, "until": "true", "retries": 1},
            {
                "name": "failing",
                "ansible.builtin.fail": {"msg": "expected"},
                "ignore_errors": True,
                "register": "bad",
            },
            {
                "name": "check",
                "ansible.builtin.assert": {
                    "that": [
                        "first is skipped",
                        "first.false_condition == 'off'",
                        "second is skipped",
                        "unread is skipped",
                        "root.stat.isdir",
                        "seen == [1, 2]",
                        "bad is failed and bad.msg == 'expected'",
                        "from_vars == 1",
                    ],
                },
            },
        ],
    }
]

INCLUDED = [{"name": "add", "ansible.builtin.set_fact": {"seen": "{{ (seen | default([])) + [item] }}"}}]


def test_the_own_strategy_runs_skips_and_controller_tasks_without_a_worker(tmp_path: Path):
    """A run with the strategy: the skipped tasks (two registered, one a module's, two of a skipped block,
    an include),
    the includes and the tasks of actions that need no host (set_fact, fail, assert) start no worker; a
    module (stat) and a task that may retry do; what each registers or sets is what later tasks read."""
    book = tmp_path / "play.yml"
    book.write_text(json.dumps(RUN_PLAY))
    (tmp_path / "included.yml").write_text(json.dumps(INCLUDED))
    (tmp_path / "vars.yml").write_text(json.dumps({"from_vars": 1}))
    args = ["-i", "localhost,", "-c", "local", "-e", '{"off": false, "on": true}', str(book)]
    args += ["-e", f"ansible_python_interpreter={sys.executable}"]
    done = _run_script(tmp_path, RUN_SCRIPT, *args)
    assert done.returncode == 0, done.stdout + done.stderr
    assert (tmp_path / "workers.txt").read_text().splitlines() == ["host", "retried"]
    # the same outcome as ansible-core's own linear strategy, which forks a worker for every task
    plain = _run_script(tmp_path, RUN_SCRIPT, *args, env={"ANSIBLE_STRATEGY": "linear"})
    assert plain.returncode == 0, plain.stdout + plain.stderr
    assert {"set", "each", "check"} <= set((tmp_path / "workers.txt").read_text().splitlines())
    recap = [line for line in done.stdout.splitlines() if line.startswith("localhost ")]
    assert recap and recap == [line for line in plain.stdout.splitlines() if line.startswith("localhost ")]


HOSTS_PLAY = [
    {
        "hosts": "all",
        "gather_facts": False,
        "tasks": [
            {
                "name": "mark",
                # a tenth of a second per host: time for the results of the hosts before to come back
                "vars": {"nap": "{{ lookup('pipe', 'sleep 0.1') }}"},
                "ansible.builtin.set_fact": {
                    "napped": "{{ nap }}",
                    "mark": "{{ inventory_hostname }}",
                    "seen": "{{ groups['all'] | map('extract', hostvars) | selectattr('mark', 'defined')"
                    " | map(attribute='mark') | list }}",
                },
            },
            {
                "name": "slow",
                "ansible.builtin.set_fact": {"waited": "{{ lookup('pipe', 'sleep 0.4; echo 1') }}"},
            },
            {"name": "check", "ansible.builtin.assert": {"that": ["seen == []", "waited == '1'"]}},
        ],
    }
]


def test_hosts_of_a_task_run_here_do_not_see_each_others_results_and_a_slow_task_goes_to_workers(
    tmp_path: Path,
):
    """On three hosts: a task run in the main process gives every host what a worker would (no host
    sees another's result of the same task, as with forked workers); a task that took longer than
    SLOW_S on the first host runs on the other two in workers (in parallel)."""
    book = tmp_path / "play.yml"
    book.write_text(json.dumps(HOSTS_PLAY))
    (tmp_path / "hosts.ini").write_text("".join(f"h{n} ansible_connection=local\n" for n in (1, 2, 3)))
    args = [
        "-i",
        str(tmp_path / "hosts.ini"),
        "-e",
        f"ansible_python_interpreter={sys.executable}",
        str(book),
    ]
    done = _run_script(tmp_path, RUN_SCRIPT, *args)
    assert done.returncode == 0, done.stdout + done.stderr
    assert (tmp_path / "workers.txt").read_text().splitlines() == ["slow", "slow"]
