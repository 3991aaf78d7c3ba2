"""The second review of the contract: the role's check fails closed on a value it cannot template (a
lazy list item neither hides nor passes its siblings), the prechecks' variables are checked through
every role's precheck.yml, shapes and patterns hold to the end of the value (a trailing newline is
no number), and the controller's name is refused in any letter case."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from launcher.validate import rules
from testbed.paths import PROJECT_ROOT
from testbed.playbook import host_failure, run_playbook

pytestmark = [pytest.mark.contract]

ROLES_DIR = PROJECT_ROOT / "roles"
ENGINE = rules.engine()


def _check(role: str, values: dict) -> dict[str, str]:
    options, ruleset = ENGINE.role_contract(str(ROLES_DIR), role)
    return {f.key: f.message for f in ENGINE.check(options, ruleset, values)}


# --- shapes and patterns to the end of the value ------------------------------------------------------


@pytest.mark.parametrize(
    ("role", "key", "value"),
    [
        ("ovms_tls_proxy", "ovms_tls_port", "9443\n"),  # int, port
        ("ovms_server", "ovms_server_grpc_workers", "2\n"),  # int
        ("ovms_server", "ovms_server_container_name", "ovms-server\n"),  # plain name
        ("ovms_tls_proxy", "ovms_tls_grpc_buffer_size", "1m\n"),  # size
        ("ovms_client", "ovms_client_image", "ovms-launcher/client:dev\n"),  # image
    ],
)
def test_a_trailing_newline_is_refused(role: str, key: str, value: str):
    assert key not in _check(role, {key: value.rstrip("\n")})
    assert key in _check(role, {key: value})


@pytest.mark.parametrize("value", ["1.5\n", "2\n"])
def test_a_trailing_newline_is_no_number(value: str):
    assert ENGINE.shape("float", value)
    assert ENGINE.shape("int", value)
    assert ENGINE.shape("float", value.rstrip()) is None


def test_a_camera_key_with_a_trailing_newline_is_refused():
    assert ENGINE.camera_match("camera-1:8554")
    assert not ENGINE.camera_match("camera-1:8554\n")


# --- the controller's name --------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["launcher", "Launcher", "LAUNCHER"])
def test_the_controller_name_is_refused_in_any_case(name: str):
    layout = {"ovms_common_pki_layout": {"controller": "launcher"}}
    found = ENGINE.check_host(name, rules.ruleset(), layout)
    assert found and "controller" in found[0].message


def test_launcher_certs_refuse_the_controller_name_in_any_case(tmp_path: Path):
    from launcher.inventory import load_inventory
    from launcher.pki.plan import controller_name_clash

    hosts = tmp_path / "hosts.yml"
    hosts.write_text(yaml.safe_dump({"all": {"children": {"ovms_clients": {"hosts": {"Launcher": {}}}}}}))
    clash = controller_name_clash(load_inventory([hosts]))
    assert clash is not None and "Launcher" in str(clash)


# --- the role's check: fail closed, item by item --------------------------------------------------------

CERTS = "/nonexistent/ovms-fail-closed/certs"


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> subprocess.CompletedProcess[str]:
    """Each host runs the client's precheck.yml (no argument specs: ansible validates nothing before
    the role's own check), then sets the variables its values read."""
    root = tmp_path_factory.mktemp("fail-closed")
    play = [
        {
            "name": "A value set after the check, and the prechecks' variables",
            "hosts": "all",
            "gather_facts": False,
            "tasks": [
                {
                    "name": "Precheck",
                    "ansible.builtin.include_role": {
                        "name": "ovms.edge.ovms_client",
                        "tasks_from": "precheck",
                    },
                },
                {"name": "Set later", "ansible.builtin.set_fact": {"later_image": "x", "later_name": "x"}},
            ],
        }
    ]
    common = {
        "ansible_connection": "local",
        "ansible_python_interpreter": sys.executable,
        "ovms_tls_certs_dir": CERTS,
        "ovms_client_data_dir": str(root / "data" / "client"),
    }
    inventory = {
        "all": {
            "vars": common,
            "hosts": {
                "client-lazy": {
                    "ovms_client_image": "{{ later_image }}",
                    "ovms_client_profiles": [{"name": "{{ later_name }}"}, {"name": "../etc"}],
                },
                "client-prechecks": {
                    "prechecks_images": [{"image": "--help"}],
                    "prechecks_min_docker_api": "1.41; x",
                },
            },
        }
    }
    done = run_playbook(root, play, inventory)
    assert not (root / "data").exists()
    return done


def test_a_value_that_cannot_be_templated_fails_the_check(run):
    failure = host_failure(run.stdout, "client-lazy")
    found = {f["key"]: f["message"] for f in failure["findings"]}
    assert "cannot be evaluated before the role runs" in found["ovms_client_image"], found
    assert "later_image" in found["ovms_client_image"]
    # the lazy item is named, and its sibling is still checked
    assert "cannot be evaluated" in found["ovms_client_profiles[0].name"], found
    assert "must be a profile name" in found["ovms_client_profiles[1].name"], found
    assert failure["untemplated"] == []


def test_the_prechecks_variables_are_checked_by_every_roles_precheck(run):
    failure = host_failure(run.stdout, "client-prechecks")
    assert failure["role"] == "prechecks", failure
    keys = {f["key"] for f in failure["findings"]}
    assert keys == {"prechecks_images[0].image", "prechecks_min_docker_api"}, failure


def test_a_deferred_option_is_left_to_the_tasks_and_its_siblings_checked(monkeypatch, tmp_path: Path):
    """`deferred:` of a rule file: the option's lazy leaves are listed, its other leaves checked."""
    role = tmp_path / "roles" / "demo"
    (role / "meta").mkdir(parents=True)
    (role / "meta" / "argument_specs.yml").write_text(
        "argument_specs: {main: {options: {demo_env: {type: dict}}}}\n", encoding="utf-8"
    )
    (role / "meta" / "rules.yml").write_text(
        "deferred: {demo_env: a value may read a fact the role sets}\n"
        "rules: {demo_env: {values: {check: string}}}\n",
        encoding="utf-8",
    )
    (tmp_path / "roles" / "ovms_common").symlink_to(ROLES_DIR / "ovms_common")
    contract = ENGINE.contract(str(tmp_path / "roles"), "demo")
    assert contract.deferred == {"demo_env": "a value may read a fact the role sets"}
    assert "demo_env" in contract.options and "ovms_tls_port" in contract.options
