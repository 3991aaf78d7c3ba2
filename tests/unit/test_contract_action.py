"""Every role's first task (the action plugin ovms.edge.ovms_check) refuses bad values after
templating, in a plain `ansible-playbook` run without the launcher, before anything is created: the
nginx injection through a templated ovms_tls_upstream_host and ovms_tls_grpc_buffer_size, a host
named `camera-1/../launcher`, a templated profile name leaving its folder, a data folder in /etc.
One run checks every case (one host each)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from testbed.playbook import host_failure, run_playbook

pytestmark = [pytest.mark.contract]

SECRET = "s3cr3t-never-shown"
INJECTION = (
    "{{ 'ovms-server:9000; } server { listen 9444 ssl; ssl_verify_client off; location / "
    "{ grpc_pass grpc://ovms_upstream; } } upstream x { server ovms-server' }}"
)
# host -> (its role, its variables, the key refused, words of the message)
CASES = {
    "proxy-upstream": (
        "ovms_tls_proxy",
        {"ovms_tls_upstream_host": INJECTION},
        "ovms_tls_upstream_host",
        "must be a container name, a host name",
    ),
    "proxy-buffer": (
        "ovms_tls_proxy",
        {"ovms_tls_grpc_buffer_size": "{{ '1m; ssl_verify_client off' }}"},
        "ovms_tls_grpc_buffer_size",
        "must be a size",
    ),
    "camera-1/../launcher": ("ovms_client", {}, "inventory_hostname", "must be a DNS name"),
    "client-profile": (
        "ovms_client",
        {"ovms_client_profiles": [{"name": "{{ '../../../../etc' }}"}]},
        "ovms_client_profiles[0].name",
        "must be a profile name",
    ),
    "server-etc": (
        "ovms_server",
        {"ovms_server_data_dir": "/etc/ssh"},
        "ovms_server_data_dir",
        "inside /etc",
    ),
    "camera-secret": (
        "ovms_camera",
        {"ovms_camera_credentials": {"username": "{{ 'op:' ~ 'x' }}", "password": SECRET}},
        "ovms_camera_credentials.username",
        "without ':'",
    ),
}


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], Path]:
    root = tmp_path_factory.mktemp("contract")
    data = root / "data"
    groups: dict = {}
    for host, (role, variables, _, _) in CASES.items():
        group = groups.setdefault(role, {"vars": {"role_of_host": role}, "hosts": {}})
        group["hosts"][host] = variables
    inventory = {
        "all": {
            "children": groups,
            "vars": {
                "ansible_connection": "local",
                "ansible_python_interpreter": sys.executable,
                "ovms_server_data_dir": str(data / "server"),
                "ovms_client_data_dir": str(data / "client"),
                "ovms_camera_data_dir": str(data / "camera"),
                "ovms_tls_proxy_enabled": True,
            },
        }
    }
    play = {
        "name": "Each host's role",
        "hosts": "all",
        "gather_facts": False,
        "tasks": [
            {"name": "Run it", "ansible.builtin.include_role": {"name": "ovms.edge.{{ role_of_host }}"}}
        ],
    }
    done = run_playbook(root, play, inventory)
    return done, data


@pytest.mark.parametrize("host", list(CASES))
def test_each_bad_value_is_refused_by_the_roles_first_task(run, host: str):
    done, _ = run
    _, _, key, words = CASES[host]
    failure = host_failure(done.stdout, host)
    assert failure["findings"], failure
    found = [f for f in failure["findings"] if f["key"] == key]
    assert found and words in found[0]["message"], failure
    assert f"{host}: {key}: " in failure["msg"]
    assert SECRET not in done.stdout + done.stderr


def test_nothing_is_created_on_a_refused_host(run):
    done, data = run
    assert done.returncode == 2, done.stdout[-3000:]
    assert not data.exists(), sorted(str(p) for p in data.rglob("*"))
    assert "changed=1" not in done.stdout
