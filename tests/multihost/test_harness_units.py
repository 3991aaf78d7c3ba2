"""The harness's pure parts: inventory generation, subnet checks, key pairs, host image fingerprint."""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path

import pytest
import yaml

from launcher.inventory import load_inventory
from testbed import harness
from testbed.hostimage import CONTEXT, fingerprint
from testbed.inventory import build_inventory, write_inventory
from testbed.keys import generate_key_pair

ADDRESSES = {"host1": "10.200.0.11", "host2": "10.200.0.12", "host3": "10.200.0.13"}
LAYOUT = {"ovms_servers": ["host1"], "ovms_clients": ["host2", "host3"]}


def test_inventory_lists_hosts_with_ssh_settings_and_groups(tmp_path):
    key = tmp_path / "id_ed25519"
    data = build_inventory(
        ADDRESSES,
        key,
        LAYOUT,
        group_vars={"all": {"x": 1}, "ovms_clients": {"ovms_client_data_dir": "/data"}},
        host_vars={"host2": {"y": 2}},
    )
    path = write_inventory(tmp_path / "hosts.yml", data)
    loaded = yaml.safe_load(path.read_text())["all"]
    assert loaded["hosts"]["host2"] == {
        "ansible_host": "10.200.0.12",
        "ansible_user": "root",
        "ansible_ssh_private_key_file": str(key),
        "ansible_ssh_common_args": "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null",
        "ansible_python_interpreter": "/usr/bin/python3",
        "y": 2,
    }
    assert loaded["vars"] == {"x": 1}
    assert loaded["children"]["ovms_clients"]["vars"] == {"ovms_client_data_dir": "/data"}
    # the launcher reads it through ansible-core, the way deploy/status/certs do
    inventory = load_inventory([path])
    assert [h.name for h in inventory.servers] == ["host1"]
    assert sorted(h.name for h in inventory.clients) == ["host2", "host3"]


def test_inventory_rejects_unknown_hosts_and_groups(tmp_path):
    with pytest.raises(ValueError, match="host9"):
        build_inventory(ADDRESSES, tmp_path / "k", {"ovms_servers": ["host9"]})
    with pytest.raises(ValueError, match="webservers"):
        build_inventory(ADDRESSES, tmp_path / "k", {"webservers": ["host1"]})


def test_subnet_must_be_private_free_and_apart_from_the_inner_engines(monkeypatch):
    monkeypatch.setattr(
        harness, "_used_networks", lambda: [("docker network bridge", ipaddress.IPv4Network("172.17.0.0/16"))]
    )
    assert str(harness.check_subnet("10.200.0.0/24", 3)) == "10.200.0.0/24"
    with pytest.raises(ValueError, match=re.escape("172.17.0.0/16")):
        harness.check_subnet("172.17.5.0/24", 3)
    with pytest.raises(ValueError, match=re.escape("10.0.0.0/8")):
        harness.check_subnet("192.0.2.0/24", 3)
    with pytest.raises(ValueError, match="own engines"):
        harness.check_subnet("10.201.0.0/24", 3)
    with pytest.raises(ValueError, match="too small"):
        harness.check_subnet("10.200.0.0/29", 3)


def test_each_host_gets_its_own_engine_ranges():
    hosts = [harness.Host(f"host{i}", i, f"10.200.0.{10 + i}", "c", "v", None) for i in (1, 2, 3)]
    bips = {ipaddress.IPv4Interface(h.dockerd_bip).network for h in hosts}
    pools = {h.dockerd_pool for h in hosts}
    assert len(bips) == 3 and len(pools) == 3
    assert not any(b.overlaps(ipaddress.IPv4Network("10.200.0.0/24")) for b in bips)


def test_key_pair_is_private_and_in_openssh_format(tmp_path):
    pair = generate_key_pair(tmp_path / "ssh")
    assert pair.private_key.stat().st_mode & 0o777 == 0o600
    assert pair.private_key.read_text().startswith("-----BEGIN OPENSSH PRIVATE KEY-----")
    assert pair.public_line.startswith("ssh-ed25519 ")
    assert generate_key_pair(tmp_path / "other").public_line != pair.public_line


def test_host_image_fingerprint_follows_content_and_base(tmp_path):
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "Dockerfile").write_text("FROM x\n")
    first = fingerprint(context, "sha256:a")
    assert fingerprint(context, "sha256:a") == first
    assert fingerprint(context, "sha256:b") != first
    (context / "Dockerfile").write_text("FROM y\n")
    assert fingerprint(context, "sha256:a") != first
    assert (Path(CONTEXT) / "Dockerfile").is_file()
