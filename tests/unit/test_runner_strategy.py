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
