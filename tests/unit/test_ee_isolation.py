"""`--ee IMAGE` (launcher/runner/isolation.py): what the execution environment container mounts (the
certificates hosts receive, never the CA key), the run's environment inside it, the refusal of a
local-connection inventory (exit 2), and the EE's three lists of packages kept equal."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from launcher.cli import main
from launcher.errors import LauncherError
from launcher.images.specs import IMAGES, select_images
from launcher.inventory import load_inventory
from launcher.runner.execute import RunRequest, runner_kwargs
from launcher.runner.isolation import IN_CACHE, IN_CERTS, IN_HOME, check_no_local_connection, prepare
from testbed.paths import PROJECT_ROOT

pytestmark = pytest.mark.collection

IMAGE = "ovms-launcher/ee:dev"


def make_pki(root: Path) -> Path:
    for rel in (
        "ca/ca.pem",
        "ca/ca.key",
        "ca/previous/ca.key",
        "ca-bundle.pem",
        "crl.pem",
        "servers/host1/server.pem",
        "servers/host1/server.key",
        "clients/host2/client.pem",
        "clients/host2/client.key",
        "clients/launcher/client.key",
        "revoked/clients/host3-1/client.key",
    ):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(rel)
    return root


def write_inventory(path: Path, key: Path, **host_vars: object) -> Path:
    data = {
        "all": {
            "hosts": {
                "host1": {"ansible_host": "10.0.0.1", "ansible_ssh_private_key_file": str(key), **host_vars},
                "host2": {"ansible_host": "10.0.0.2", "ansible_ssh_private_key_file": str(key)},
            },
            "children": {
                "ovms_servers": {"hosts": {"host1": None}},
                "ovms_clients": {"hosts": {"host2": None}},
            },
        }
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture
def setup(tmp_path: Path) -> dict[str, Path]:
    certs = make_pki(tmp_path / "certs")
    cache = tmp_path / "cache"
    for part in ("models", "media", "wheelhouse"):
        (cache / part).mkdir(parents=True)
    key = tmp_path / "keys" / "id_ed25519"
    key.parent.mkdir()
    key.write_text("KEY")
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "known_hosts").write_text("")
    (home / ".ssh" / "id_ed25519").write_text("USER KEY")
    (home / ".ssh" / "config").write_text("Host *\n")
    inventory = write_inventory(tmp_path / "inv" / "hosts.yml", key)
    (inventory.parent / "group_vars").mkdir()
    (inventory.parent / "group_vars" / "all.yml").write_text("ovms_tls_enabled: true\n")
    return {"certs": certs, "cache": cache, "key": key, "home": home, "inventory": inventory}


def ee_of(setup: dict[str, Path], inventory: Path | None = None):
    source = inventory or setup["inventory"]
    return prepare(
        IMAGE,
        [source],
        load_inventory([source]),
        certs_dir=setup["certs"],
        cache=setup["cache"],
        home=setup["home"],
    )


def test_only_what_hosts_receive_of_the_pki_is_mounted_never_the_ca(setup: dict[str, Path]):
    ee = ee_of(setup)
    certs = setup["certs"]
    by_source = {m.source: m for m in ee.mounts}
    assert {m.target for m in ee.mounts if m.source.is_relative_to(certs)} == {
        f"{IN_CERTS}/ca-bundle.pem",
        f"{IN_CERTS}/crl.pem",
        f"{IN_CERTS}/servers",
        f"{IN_CERTS}/clients",
    }
    for source in by_source:
        assert source not in (certs, certs / "ca", certs / "revoked")
        assert not source.is_relative_to(certs / "ca") and not source.is_relative_to(certs / "revoked")
    volumes = [m.volume() for m in ee.mounts]
    assert not any("ca.key" in v for v in volumes), volumes
    # every mount is read-only (the SSH agent socket is the one exception, and there is none here)
    assert all(v.endswith(":ro") for v in volumes), volumes


def test_cache_inventory_keys_and_profiles_are_mounted(setup: dict[str, Path]):
    ee = ee_of(setup)
    targets = {m.target: m.source for m in ee.mounts}
    # the cache's models and media only, at the path OVMS_LAUNCHER_CACHE names inside
    assert targets[f"{IN_CACHE}/models"] == setup["cache"] / "models"
    assert targets[f"{IN_CACHE}/media"] == setup["cache"] / "media"
    assert not any("wheelhouse" in t for t in targets)
    # the inventory, its group_vars and the SSH key it names, at their own paths
    inventory = setup["inventory"].resolve()
    assert targets[str(inventory)] == inventory
    assert targets[str(inventory.parent / "group_vars")] == inventory.parent / "group_vars"
    assert targets[str(setup["key"])] == setup["key"]
    # the user's known_hosts and default identity in HOME, not the rest of ~/.ssh
    assert targets[f"{IN_HOME}/.ssh/known_hosts"] == setup["home"] / ".ssh" / "known_hosts"
    assert f"{IN_HOME}/.ssh/id_ed25519" in targets and f"{IN_HOME}/.ssh/config" not in targets
    # the launcher's profiles over the image's collection's
    assert any(t.endswith("/ansible_collections/ovms/edge/profiles") for t in targets)
    assert ee.inventories == (inventory,)


def test_inventory_paths_for_the_controller_are_mounted(setup: dict[str, Path], tmp_path: Path):
    profiles = tmp_path / "my-profiles"
    (profiles / "p").mkdir(parents=True)
    inventory = write_inventory(
        tmp_path / "inv2.yml",
        setup["key"],
        ovms_client_profiles_src=str(profiles),
        ovms_client_profiles=[{"name": "x", "path": str(profiles / "p")}],
    )
    targets = {m.target for m in ee_of(setup, inventory).mounts}
    assert {str(profiles), str(profiles / "p")} <= targets


def test_a_templated_controller_path_is_refused(setup: dict[str, Path], tmp_path: Path):
    inventory = write_inventory(tmp_path / "inv3.yml", setup["key"], ovms_client_media_dir="{{ x }}/media")
    with pytest.raises(LauncherError) as raised:
        ee_of(setup, inventory)
    assert raised.value.exit_code == 2 and "ovms_client_media_dir" in raised.value.render()


def test_runner_runs_the_image_with_in_container_paths(setup: dict[str, Path], tmp_path: Path):
    ee = ee_of(setup)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    request = RunRequest(
        action="deploy",
        playbook=PROJECT_ROOT / "playbooks" / "deploy.yml",
        inventories=(setup["inventory"],),
        check=True,
        ee=ee,
    )
    kwargs = runner_kwargs(request, run_dir)
    assert kwargs["process_isolation"] is True
    assert kwargs["process_isolation_executable"] == "docker"
    assert kwargs["container_image"] == IMAGE
    assert kwargs["playbook"] == "ovms.edge.deploy"
    assert "inventory" not in kwargs
    assert kwargs["cmdline"].split() == ["-i", str(setup["inventory"].resolve()), "--check"]
    env = kwargs["envvars"]
    assert "PATH" not in env  # this machine's PATH means nothing inside the image
    assert env["HOME"] == IN_HOME and env["OVMS_LAUNCHER_CACHE"] == IN_CACHE
    assert env["OVMS_LAUNCHER_CERTS_DIR"] == IN_CERTS
    assert env["ANSIBLE_CONFIG"] == "/runner/ansible.cfg" and (run_dir / "ansible.cfg").is_file()
    assert "--network=host" in kwargs["container_options"]
    assert any(o.startswith(f"--tmpfs={IN_HOME}:") for o in kwargs["container_options"])
    assert (run_dir / "inventory").is_dir()


def test_network_option_is_checked(setup: dict[str, Path]):
    ee = prepare(IMAGE, [setup["inventory"]], None, network="ovms-mh-net", certs_dir=setup["certs"])
    assert ee.network == "ovms-mh-net"
    with pytest.raises(LauncherError):
        prepare(IMAGE, [setup["inventory"]], None, network="bad net;rm", certs_dir=setup["certs"])


def test_local_connection_is_refused_naming_inventory_host_and_why(setup: dict[str, Path], tmp_path: Path):
    inventory = write_inventory(tmp_path / "local.yml", setup["key"], ansible_connection="local")
    with pytest.raises(LauncherError) as raised:
        check_no_local_connection(load_inventory([inventory]))
    text = raised.value.render()
    assert raised.value.exit_code == 2
    assert str(inventory) in text and "host1" in text and "container" in text


@pytest.mark.parametrize("command", ["deploy", "status", "destroy"])
def test_cli_refuses_the_localhost_inventory_with_exit_2(command: str, monkeypatch: pytest.MonkeyPatch):
    import ansible_runner

    def never(**kwargs: object) -> None:
        raise AssertionError("nothing may run")

    monkeypatch.setattr(ansible_runner, "run_async", never)
    inventory = PROJECT_ROOT / "inventories" / "localhost"
    result = CliRunner().invoke(main, [command, "-i", str(inventory), "--ee", IMAGE])
    assert result.exit_code == 2, result.output
    assert "ansible_connection: local" in result.output and "localhost" in result.output


def test_ee_image_is_built_by_name_only():
    assert "ee" not in {spec.name for spec in select_images(())}
    assert [spec.name for spec in select_images(["ee"])] == ["ee"]
    assert IMAGES["ee"].tag == "ovms-launcher/ee:dev"


def _names(lines: list[str]) -> dict[str, str]:
    """requirement name (normalized, extras kept) -> the whole requirement, comments dropped."""
    found = {}
    for line in lines:
        line = line.split("#", 1)[0].strip()
        if line:
            name = re.split(r"[<>=!~ ;]", line, maxsplit=1)[0].lower().replace("_", "-")
            found[name] = line.replace(" ", "")
    return found


def test_the_ee_package_lists_agree():
    """images/ee/requirements.txt = execution-environment.yml's ansible, runner and python lists +
    the collection's requirements.txt (ansible-builder reads it from the collection)."""
    ee_file = yaml.safe_load((PROJECT_ROOT / "execution-environment.yml").read_text())
    deps = ee_file["dependencies"]
    builder = [deps["ansible_core"]["package_pip"], deps["ansible_runner"]["package_pip"], *deps["python"]]
    collection = (PROJECT_ROOT / "requirements.txt").read_text().splitlines()
    image = (PROJECT_ROOT / "images" / "ee" / "requirements.txt").read_text().splitlines()
    assert _names(image) == {**_names(builder), **_names(collection)}
    assert ee_file["version"] == 3 and deps["system"] == "bindep.txt"


def test_execution_environment_names_the_collection_version():
    galaxy = yaml.safe_load((PROJECT_ROOT / "galaxy.yml").read_text())
    tarball = f"{galaxy['namespace']}-{galaxy['name']}-{galaxy['version']}.tar.gz"
    text = (PROJECT_ROOT / "execution-environment.yml").read_text()
    assert text.count(tarball) == 2, f"execution-environment.yml must install {tarball}"


def test_ansible_builder_generates_a_context(tmp_path: Path):
    """ansible-builder (when installed) accepts the file and reads the collection's lists."""
    builder = Path(sys.executable).parent / "ansible-builder"
    if not builder.exists():
        pytest.skip("ansible-builder is not installed (pip install ansible-builder)")

    for name in ("execution-environment.yml", "bindep.txt", "requirements.txt"):
        shutil.copy(PROJECT_ROOT / name, tmp_path / name)
    galaxy = yaml.safe_load((PROJECT_ROOT / "galaxy.yml").read_text())
    (tmp_path / "_ee").mkdir()
    (tmp_path / "_ee" / f"ovms-edge-{galaxy['version']}.tar.gz").write_bytes(b"")
    proc = subprocess.run(
        [str(builder), "create", "-f", "execution-environment.yml", "-c", "ctx"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    containerfile = next((tmp_path / "ctx").glob("*file")).read_text()
    assert "ansible>=12.0,<13" in containerfile and "ansible_mitogen" in containerfile
    assert "mitogen" in (tmp_path / "ctx" / "_build" / "requirements.txt").read_text()
