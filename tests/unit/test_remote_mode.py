"""Which hosts go remote: the roles' computed defaults (ovms_server_tls, ovms_tls_proxy_enabled,
ovms_client_tls, ovms_client_server_address), evaluated by ansible-playbook itself on small
inventories (local connection, no task touches the machine)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from launcher.content import content

PLAYBOOK = """
- name: Server side
  hosts: ovms_servers
  gather_facts: false
  roles:
    - {role: ovms.edge.ovms_server, tags: [never]}
    - {role: ovms.edge.ovms_tls_proxy, tags: [never]}
  tasks:
    - name: Write what the roles computed
      ansible.builtin.copy:
        content: "{{ {'server_tls': ovms_server_tls, 'proxy': ovms_tls_proxy_enabled,
                      'internal': ovms_tls_internal_network,
                      'proxy_name': ovms_tls_container_name} | to_json }}"
        dest: "{{ out }}/server-{{ inventory_hostname }}.json"
        mode: "0644"

- name: Client side
  hosts: ovms_clients
  gather_facts: false
  roles:
    - {role: ovms.edge.ovms_client, tags: [never]}
  tasks:
    - name: Write what the role computed
      ansible.builtin.copy:
        content: "{{ {'client_tls': ovms_client_tls, 'address': ovms_client_server_address,
                      'server': ovms_client_server} | to_json }}"
        dest: "{{ out }}/client-{{ inventory_hostname }}.json"
        mode: "0644"
"""


def _modes(tmp_path: Path, children: dict, common: dict | None = None) -> dict[str, dict]:
    inventory = tmp_path / "hosts.yml"
    variables = {
        "ansible_connection": "local",
        "ansible_python_interpreter": sys.executable,
        **(common or {}),
    }
    inventory.write_text(yaml.safe_dump({"all": {"vars": variables, "children": children}}))
    playbook = tmp_path / "modes.yml"
    playbook.write_text(PLAYBOOK)
    out = tmp_path / "out"
    out.mkdir()
    env = {**os.environ, "ANSIBLE_COLLECTIONS_PATH": str(content().collections_path), "ANSIBLE_NOCOLOR": "1"}
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(inventory), str(playbook),
         "-e", f"out={out}"],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return {p.stem: json.loads(p.read_text()) for p in out.glob("*.json")}


@pytest.mark.slow
def test_single_system_stays_plain(tmp_path):
    modes = _modes(
        tmp_path, {"ovms_servers": {"hosts": {"localhost": {}}}, "ovms_clients": {"hosts": {"localhost": {}}}}
    )
    assert modes["server-localhost"]["server_tls"] is False
    assert modes["server-localhost"]["proxy"] is False
    assert modes["client-localhost"] == {
        "client_tls": False,
        "address": "ovms-server:9000",
        "server": "localhost",
    }


@pytest.mark.slow
def test_a_client_on_another_host_makes_both_sides_remote(tmp_path):
    children = {
        "ovms_servers": {"hosts": {"srv": {"ansible_host": "192.0.2.10"}, "srv2": {}}},
        "ovms_clients": {
            "hosts": {
                "srv": {},  # a client of itself, on a server that also has remote clients
                "cam": {"ovms_client_server": "srv"},
                "cam2": {"ovms_client_server": "srv2"},
            }
        },
    }
    modes = _modes(tmp_path, children, {"ovms_tls_port": 19443})
    assert modes["server-srv"]["server_tls"] is True and modes["server-srv"]["proxy"] is True
    assert modes["server-srv"]["internal"] == "ovms-launcher-internal"
    assert modes["server-srv"]["proxy_name"] == "ovms-server-tls"
    # advertised address: ansible_host (no ovms_advertise_address), and the TLS port
    assert modes["client-cam"] == {"client_tls": True, "address": "192.0.2.10:19443", "server": "srv"}
    # the server's own client goes through the proxy too (OVMS is on the internal network)
    assert modes["client-srv"]["client_tls"] is True
    # srv2 has a client on another host as well; its address falls back to the inventory name
    assert modes["client-cam2"]["address"] == "srv2:19443"
    assert modes["server-srv2"]["proxy"] is True


@pytest.mark.slow
def test_ovms_tls_enabled_forces_tls_on_one_machine(tmp_path):
    children = {
        "ovms_servers": {"hosts": {"box": {"ovms_advertise_address": "ovms.example.test"}}},
        "ovms_clients": {"hosts": {"box": {}}},
    }
    modes = _modes(tmp_path, children, {"ovms_tls_enabled": True})
    assert modes["server-box"]["proxy"] is True and modes["server-box"]["server_tls"] is True
    assert modes["client-box"]["client_tls"] is True
    assert modes["client-box"]["address"] == "ovms.example.test:9443"
