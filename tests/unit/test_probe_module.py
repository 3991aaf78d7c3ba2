"""The collection's module ovms_probe (plugins/modules/ovms_probe.py): a remote server's model states and
metrics through its mTLS proxy, read on the controller for `launcher status`. Its logic is tested by
importing the file, its module interface through ansible-core's AnsibleModule (the end-to-end run over
mTLS: tests/integration/test_remote_localhost.py)."""

from __future__ import annotations

import json
import re
import socket
from pathlib import Path
from types import ModuleType

import pytest
from ansible.module_utils.testing import patch_module_args

from testbed.paths import PROJECT_ROOT
from testbed.plugins import load_plugin

pytestmark = pytest.mark.collection

MODULE_FILE = PROJECT_ROOT / "plugins" / "modules" / "ovms_probe.py"


PROBE = load_plugin(MODULE_FILE)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _run(args: dict, capsys: pytest.CaptureFixture[str], module: ModuleType = PROBE) -> tuple[int, dict]:
    with patch_module_args(args), pytest.raises(SystemExit) as exited:
        module.main()
    return int(exited.value.code or 0), json.loads(capsys.readouterr().out)


def _files(tmp_path: Path) -> dict[str, str]:
    paths = {
        "ca_path": tmp_path / "ca-bundle.pem",
        "client_cert": tmp_path / "c.pem",
        "client_key": tmp_path / "c.key",
    }
    return {k: str(v) for k, v in paths.items()}


def test_model_states_per_model_and_errors_by_name():
    def call(name: str) -> dict:
        if name == "missing":
            raise ConnectionError("Received http2 header\n with status: 400")
        return {1: {"state": "AVAILABLE", "error_code": 0}, 2: {"state": "LOADING"}}

    result = PROBE.model_states(["person-detection", "missing"], call)
    assert result["models"] == {"person-detection": {"1": "AVAILABLE", "2": "LOADING"}}
    assert result["errors"] == {"missing": "ConnectionError: Received http2 header with status: 400"}


def test_missing_certificate_files_are_an_error_of_the_status_with_the_fix(tmp_path, capsys):
    code, out = _run({"address": "127.0.0.1:9", **_files(tmp_path), "models": ["m"]}, capsys)
    assert code == 0 and not out.get("failed") and out["changed"] is False
    assert out["models"] == {} and out["metrics"] == []
    assert "launcher certs generate" in out["errors"]["*"] and "ca-bundle.pem" in out["errors"]["*"]


def test_an_unreachable_server_is_reported_per_model_and_the_task_succeeds(tmp_path, capsys):
    for name in _files(tmp_path).values():
        Path(name).write_text("not a PEM file\n")
    args = {"address": f"127.0.0.1:{_closed_port()}", **_files(tmp_path), "models": ["a", "b"], "timeout": 1}
    code, out = _run(args, capsys)
    assert code == 0 and not out.get("failed")
    assert set(out["errors"]) == {"a", "b"} and out["models"] == {}
    assert out["metrics"] == [] and out["metrics_error"]


@pytest.mark.parametrize(
    ("library", "flag"), [("tritonclient[grpc]", "HAS_TRITONCLIENT"), ("requests", "HAS_REQUESTS")]
)
def test_a_missing_library_fails_the_task_naming_it_and_the_fix(tmp_path, capsys, monkeypatch, library, flag):
    module = load_plugin(MODULE_FILE)  # a fresh copy: the test changes it
    monkeypatch.setattr(module, flag, False)
    code, out = _run({"address": "127.0.0.1:9", **_files(tmp_path)}, capsys, module)
    assert code == 1 and out["failed"]
    assert f"({library})" in out["msg"] and "requirements.txt" in out["msg"] and "pip install" in out["msg"]


def test_bad_arguments_fail_the_task(tmp_path, capsys):
    code, out = _run({"address": "127.0.0.1:9"}, capsys)
    assert code == 1 and "missing required arguments" in out["msg"]
    code, out = _run({"address": "127.0.0.1:9", **_files(tmp_path), "timeout": 0}, capsys)
    assert code == 1 and "timeout" in out["msg"]


def test_metrics_are_read_twice_once_or_not_at_all(monkeypatch):
    calls: list[str] = []

    class Reply:
        status_code = 200
        text = "ovms_requests_success 1\n"

    monkeypatch.setattr(PROBE.requests, "get", lambda url, **_: calls.append(url) or Reply())
    monkeypatch.setattr(PROBE.time, "sleep", lambda seconds: None)
    ca = cert = key = Path("/nonexistent")
    for interval, reads in ((0.5, 2), (0.0, 1), (-1.0, 0)):
        calls.clear()
        samples, error = PROBE.read_metrics("h:1", ca, cert, key, 1.0, interval)
        assert (len(samples), len(calls), error) == (reads, reads, None)
    assert calls == [] and samples == []
    Reply.status_code = 404
    samples, error = PROBE.read_metrics("h:1", ca, cert, key, 1.0, 0.0)
    assert samples == [] and error is not None and error.startswith("HTTP 404")


def test_the_module_is_documented_and_its_options_match_its_spec():
    import yaml

    documented = yaml.safe_load(PROBE.DOCUMENTATION)["options"]
    assert set(documented) == set(PROBE.ARGUMENT_SPEC)
    for name, spec in PROBE.ARGUMENT_SPEC.items():
        assert documented[name]["type"] == spec["type"], name
        assert documented[name].get("default") == spec.get("default"), name
    assert yaml.safe_load(PROBE.EXAMPLES) and set(yaml.safe_load(PROBE.RETURN)) >= {
        "models",
        "errors",
        "metrics",
    }


def test_no_role_or_playbook_runs_the_launchers_python():
    """The status reads remote servers with the collection's module, never `python -m launcher…`."""
    runs_launcher = re.compile(r"""launcher\.probe|-m['",\s]+launcher|ansible_playbook_python\s*,""")
    offenders = [
        str(path.relative_to(PROJECT_ROOT))
        for folder in ("roles", "playbooks", "plugins")
        for path in (PROJECT_ROOT / folder).rglob("*")
        if path.suffix in (".yml", ".yaml", ".j2", ".py")
        and runs_launcher.search(path.read_text(encoding="utf-8"))
    ]
    assert offenders == []
    assert not (PROJECT_ROOT / "launcher" / "probe.py").exists()
