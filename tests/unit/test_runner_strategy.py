"""The launcher's Ansible strategy: Mitogen when installed, a built-in one on request."""

from __future__ import annotations

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
    import json
    import subprocess
    import sys

    from launcher.content import content

    source = content()
    script = tmp_path / "preload.py"
    script.write_text(PRELOAD_SCRIPT)
    env = {
        **runner_envvars(source.ansible_cfg),
        "ANSIBLE_COLLECTIONS_PATH": str(source.collections_path),
        "HOME": str(tmp_path),
        "PATH": "/usr/bin:/bin",
    }
    done = subprocess.run(
        [sys.executable, str(script), str(OWN_STRATEGY_DIR / f"{MITOGEN_STRATEGY}.py"), source.fqcn],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found["action"] and "ovms_client" in found["filters"] and "ovms_common" in found["filters"]
    assert found["child"] == [], f"a worker loaded these plugins itself: {found['child']}"
