"""Where the launcher keeps run artifacts and the PKI: a checkout keeps `runs/` and `certs/`, an installed
launcher the user's XDG folders; a variable overrides each (launcher/paths.py, docs/install.md). And an
installed launcher leaves the double's image (checkout only) out of its builds."""

from __future__ import annotations

from pathlib import Path

import pytest

from launcher import paths
from launcher.content import Content
from launcher.errors import LauncherError
from launcher.images import specs
from launcher.runner.execute import runner_envvars
from testbed.paths import PROJECT_ROOT

pytestmark = pytest.mark.collection

VARIABLES = ("OVMS_LAUNCHER_RUNS", "OVMS_LAUNCHER_RUNS_DIR", "OVMS_LAUNCHER_CERTS_DIR", "XDG_DATA_HOME")


@pytest.fixture
def clean(monkeypatch):
    for name in (*VARIABLES, "XDG_STATE_HOME"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


@pytest.fixture
def installed(clean, tmp_path):
    """As an installed launcher sees it: no checkout, a home of its own."""
    clean.setattr(paths, "_checkout", lambda: None)
    clean.setenv("HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def test_a_checkout_keeps_runs_and_certs_in_the_checkout(clean):
    assert paths.runs_root() == PROJECT_ROOT / "runs"
    assert paths.default_certs_dir() == PROJECT_ROOT / "certs"


def test_an_installed_launcher_uses_the_users_folders(installed):
    assert paths.runs_root() == installed / ".local" / "state" / "ovms-launcher" / "runs"
    assert paths.default_certs_dir() == installed / ".local" / "share" / "ovms-launcher" / "certs"


def test_xdg_folders_and_the_variables_win(installed, clean, tmp_path):
    clean.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    clean.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    assert paths.runs_root() == tmp_path / "state" / "ovms-launcher" / "runs"
    assert paths.default_certs_dir() == tmp_path / "data" / "ovms-launcher" / "certs"
    # a relative XDG value is ignored (the XDG rule)
    clean.setenv("XDG_DATA_HOME", "relative/data")
    assert paths.default_certs_dir() == installed / ".local" / "share" / "ovms-launcher" / "certs"
    clean.setenv("OVMS_LAUNCHER_RUNS", str(tmp_path / "old"))
    assert paths.runs_root() == tmp_path / "old"
    clean.setenv("OVMS_LAUNCHER_RUNS_DIR", str(tmp_path / "runs"))
    assert paths.runs_root() == tmp_path / "runs"
    clean.setenv("OVMS_LAUNCHER_CERTS_DIR", str(tmp_path / "pki"))
    assert paths.default_certs_dir() == tmp_path / "pki"


def test_the_runner_always_tells_the_roles_the_pki_folder(installed, tmp_path):
    envvars = runner_envvars(tmp_path / "ansible.cfg")
    assert envvars["OVMS_LAUNCHER_CERTS_DIR"] == str(
        installed / ".local" / "share" / "ovms-launcher" / "certs"
    )


def test_an_installed_launcher_builds_no_double(monkeypatch, tmp_path):
    packaged = Content(root=tmp_path / "ansible_collections" / "ovms" / "edge", collections_path=tmp_path)
    monkeypatch.setattr(specs, "content", lambda: packaged)
    assert packaged.images == tmp_path / "images"
    assert "ovms-double" not in [s.name for s in specs.select_images(())]
    assert [s.name for s in specs.select_images(["client"])] == ["client"]
    with pytest.raises(LauncherError) as refused:
        specs.select_images(["ovms-double"])
    assert refused.value.exit_code == 2 and "only from a source checkout" in refused.value.message


def test_a_checkout_builds_the_double_from_its_sources():
    assert "ovms-double" in [s.name for s in specs.select_images(())]
    from launcher.images.context import package_source

    client = specs.IMAGES["client"]
    assert package_source(client, "client") == PROJECT_ROOT / "client"
    double = specs.IMAGES["ovms-double"]
    assert package_source(double, "launcher", file=True) == PROJECT_ROOT / "launcher" / "__init__.py"
    assert Path(double.sources["ovms_double"]) == Path("ovms_double")


def test_a_missing_pki_in_the_default_folder_names_the_variable_to_set(clean, tmp_path):
    """Remote mode with no PKI in the launcher's default folder (no OVMS_LAUNCHER_CERTS_DIR): the
    problem says where the folder comes from and which variable points elsewhere."""
    from launcher.validate import tls, validate

    clean.setattr(tls, "default_certs_dir", lambda: tmp_path / "no-pki")
    report = validate([PROJECT_ROOT / "inventories" / "example-remote"], certificates=True)
    [problem] = [p for p in report.problems if "ca-bundle.pem is missing" in p.message]
    assert problem.key.startswith("ovms_tls_certs_dir (default: the launcher's PKI folder)"), problem
    assert "point ovms_tls_certs_dir at the folder that holds your PKI" in problem.fix, problem.fix
