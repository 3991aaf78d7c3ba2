"""The runner's remote-mode settings (forks per host, the PKI directory passed to the roles). The
probe itself is the collection's module ovms_probe: tests/unit/test_probe_module.py."""

from __future__ import annotations

from pathlib import Path

from launcher.runner.execute import RunRequest, runner_envvars, runner_kwargs


def test_the_runner_gets_one_fork_per_host_and_the_certs_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("OVMS_LAUNCHER_CERTS_DIR", str(tmp_path / "pki"))
    request = RunRequest(action="deploy", playbook=Path("deploy.yml"), inventories=(tmp_path,), forks=7)
    kwargs = runner_kwargs(request, tmp_path / "run")
    assert kwargs["forks"] == 7
    assert kwargs["envvars"]["OVMS_LAUNCHER_CERTS_DIR"] == str((tmp_path / "pki").resolve())


def test_without_a_certs_dir_the_roles_get_the_launchers_default(tmp_path, monkeypatch):
    from testbed.paths import PROJECT_ROOT

    monkeypatch.delenv("OVMS_LAUNCHER_CERTS_DIR", raising=False)
    # a checkout's certs/ (an installed launcher: the user's data folder, tests/unit/test_paths.py)
    envvars = runner_envvars(tmp_path / "ansible.cfg")
    assert envvars["OVMS_LAUNCHER_CERTS_DIR"] == str((PROJECT_ROOT / "certs").resolve())
    request = RunRequest(action="status", playbook=Path("status.yml"), inventories=(tmp_path,))
    assert "forks" not in runner_kwargs(request, tmp_path / "run")
