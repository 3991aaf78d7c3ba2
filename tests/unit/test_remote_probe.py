"""launcher.probe: model states through the mTLS proxy for `launcher status`, and the runner's
remote-mode settings (forks per host, the PKI directory passed to the roles)."""

from __future__ import annotations

import json
from pathlib import Path

from launcher import probe
from launcher.runner.execute import RunRequest, runner_envvars, runner_kwargs


def test_model_states_per_model_and_errors_by_name():
    def call(name: str) -> dict:
        if name == "missing":
            raise ConnectionError("Received http2 header with status: 400")
        return {1: {"state": "AVAILABLE", "error_code": 0}, 2: {"state": "LOADING"}}

    result = probe.model_states(["person-detection", "missing"], call)
    assert result["models"] == {"person-detection": {"1": "AVAILABLE", "2": "LOADING"}}
    assert result["errors"] == {"missing": "ConnectionError: Received http2 header with status: 400"}


def test_missing_certificate_files_are_reported_with_the_fix(tmp_path, capsys):
    code = probe.main(
        ["--address", "127.0.0.1:9", "--ca", str(tmp_path / "ca.pem"), "--cert", str(tmp_path / "c.pem"),
         "--key", str(tmp_path / "c.key"), "--model", "m"]
    )  # fmt: skip
    out = json.loads(capsys.readouterr().out)
    assert code == 1
    assert out["models"] == {}
    assert "launcher certs generate" in out["errors"]["*"] and "ca.pem" in out["errors"]["*"]


def test_the_runner_gets_one_fork_per_host_and_the_certs_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("OVMS_LAUNCHER_CERTS_DIR", str(tmp_path / "pki"))
    request = RunRequest(action="deploy", playbook=Path("deploy.yml"), inventories=(tmp_path,), forks=7)
    kwargs = runner_kwargs(request, tmp_path / "run")
    assert kwargs["forks"] == 7
    assert kwargs["envvars"]["OVMS_LAUNCHER_CERTS_DIR"] == str((tmp_path / "pki").resolve())


def test_without_a_certs_dir_the_roles_use_their_default(tmp_path, monkeypatch):
    monkeypatch.delenv("OVMS_LAUNCHER_CERTS_DIR", raising=False)
    assert "OVMS_LAUNCHER_CERTS_DIR" not in runner_envvars(tmp_path / "ansible.cfg")
    request = RunRequest(action="status", playbook=Path("status.yml"), inventories=(tmp_path,))
    assert "forks" not in runner_kwargs(request, tmp_path / "run")
