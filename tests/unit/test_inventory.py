"""launcher.inventory: inventories read by ansible-core itself, typed for the launcher."""

from __future__ import annotations

import ipaddress
import textwrap
from pathlib import Path

import pytest
from cryptography import x509

from launcher.errors import LauncherError
from launcher.inventory import OvmsServer, load_inventory
from launcher.pki import Kind
from launcher.pki.plan import specs_from_inventory
from testbed.paths import PROJECT_ROOT

EXAMPLE = PROJECT_ROOT / "inventories" / "example-remote"


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def test_example_remote_inventory():
    inventory = load_inventory([EXAMPLE])
    assert [s.name for s in inventory.servers] == ["ovms-server-1"]
    server = inventory.servers[0]
    assert isinstance(server, OvmsServer)
    assert server.ansible_host == "192.0.2.10"
    assert server.advertise_address == "192.0.2.10"
    assert server.extra_sans == ("DNS:ovms.example.com",)
    assert [c.name for c in inventory.clients] == ["camera-client-1", "camera-client-2"]
    assert inventory.host("camera-client-2").ansible_host == "camera-client-2.example.com"
    # group_vars/all.yml of the directory applies to every host
    assert all(h.vars["ansible_user"] == "deploy" for h in inventory.hosts.values())
    assert "groups" not in server.vars and "inventory_hostname" not in server.vars
    with pytest.raises(LauncherError, match="not in the inventory"):
        inventory.host("nope")


def test_directory_with_group_and_host_vars_and_templates(tmp_path):
    inv = tmp_path / "site"
    write(
        inv / "hosts.yml",
        """
        all:
          children:
            ovms_servers:
              hosts:
                edge-a:
                  ansible_host: 10.1.0.5
                edge-b: {}
            ovms_clients:
              hosts:
                cam-a:
        """,
    )
    write(inv / "group_vars" / "ovms_servers.yml", 'ovms_tls_extra_sans: ["DNS:ovms.{{ site_domain }}"]\n')
    write(inv / "group_vars" / "all.yml", "site_domain: shop.example\n")
    write(inv / "host_vars" / "edge-a.yml", 'ovms_advertise_address: "{{ ansible_host }}"\nlabel: left\n')
    write(inv / "host_vars" / "edge-b.yml", "ovms_advertise_address: edge-b.shop.example\n")
    inventory = load_inventory([inv])
    a, b = sorted(inventory.servers, key=lambda s: s.name)
    assert (a.ansible_host, a.advertise_address) == ("10.1.0.5", "10.1.0.5")
    assert (b.ansible_host, b.advertise_address) == ("edge-b", "edge-b.shop.example")
    assert a.extra_sans == b.extra_sans == ("DNS:ovms.shop.example",)
    assert a.vars["label"] == "left"
    # plain Python values, not ansible's tagged types
    assert type(a.vars["label"]) is str and type(a.ansible_host) is str
    assert type(a.vars["ovms_tls_extra_sans"]) is list
    assert [c.name for c in inventory.clients] == ["cam-a"]

    specs = {s.name: s for s in specs_from_inventory(inventory)}
    assert specs["edge-a"].kind is Kind.SERVER
    assert specs["edge-a"].sans == (
        x509.DNSName("edge-a"),
        x509.IPAddress(ipaddress.ip_address("10.1.0.5")),
        x509.DNSName("ovms.shop.example"),
    )
    assert specs["edge-b"].sans == (
        x509.DNSName("edge-b"),
        x509.DNSName("edge-b.shop.example"),
        x509.DNSName("ovms.shop.example"),
    )
    assert specs["cam-a"].kind is Kind.CLIENT and specs["cam-a"].sans == (x509.DNSName("cam-a"),)


def test_several_sources_ini_and_yaml(tmp_path):
    ini = write(
        tmp_path / "servers.ini",
        """
        [ovms_servers]
        192.0.2.50 ovms_tls_extra_sans='["IP:198.51.100.7"]'
        """,
    )
    yml = write(
        tmp_path / "clients.yml",
        """
        ovms_clients:
          hosts:
            cam-x:
              ansible_host: 203.0.113.9
        """,
    )
    inventory = load_inventory([ini, yml])
    assert [s.name for s in inventory.servers] == ["192.0.2.50"]
    assert [c.name for c in inventory.clients] == ["cam-x"]
    (server, client, controller) = specs_from_inventory(inventory)
    assert controller.name == "launcher"  # the controller's own client certificate (launcher status)
    # a host named by its IP address gets an IP SAN, not a DNS one
    assert server.sans == (
        x509.IPAddress(ipaddress.ip_address("192.0.2.50")),
        x509.IPAddress(ipaddress.ip_address("198.51.100.7")),
    )
    assert client.sans == (x509.DNSName("cam-x"),)


def test_missing_inventory_names_the_file(tmp_path):
    missing = tmp_path / "nope.yml"
    with pytest.raises(LauncherError, match="inventory not found") as info:
        load_inventory([missing])
    assert info.value.file == str(missing)
    with pytest.raises(LauncherError, match="no inventory given"):
        load_inventory([])


def test_invalid_yaml_names_the_file(tmp_path):
    bad = write(tmp_path / "bad.yml", "all:\n  hosts: [\n")
    with pytest.raises(LauncherError, match="not a valid Ansible inventory") as info:
        load_inventory([bad])
    assert info.value.file == str(bad)
    assert "YAML" in info.value.message


def test_bad_file_inside_a_directory_names_that_file(tmp_path):
    inv = tmp_path / "inv"
    write(inv / "good.yml", "ovms_clients:\n  hosts:\n    cam-1:\n")
    bad = write(inv / "broken.yml", "ovms_servers:\n  hosts: [oops\n")
    with pytest.raises(LauncherError) as info:
        load_inventory([inv])
    assert info.value.file == str(bad)


def test_broken_group_vars_names_that_file(tmp_path):
    inv = tmp_path / "inv"
    write(inv / "hosts.yml", "ovms_clients:\n  hosts:\n    cam-1:\n")
    write(inv / "group_vars" / "ovms_clients.yml", "ok: 1\n")
    bad = write(inv / "group_vars" / "all" / "main.yml", "a: [\n")
    with pytest.raises(LauncherError, match="YAML") as info:
        load_inventory([inv])
    assert info.value.file == str(bad)


def test_binary_garbage_names_the_file(tmp_path):
    garbage = tmp_path / "hosts.yml"
    garbage.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(LauncherError, match="not a valid Ansible inventory") as info:
        load_inventory([garbage])
    assert info.value.file == str(garbage)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ('"DNS:x"', "must be a list of strings"),
        ("[1, 2]", "must be a list of strings"),
        ('["URI:http://x"]', "unsupported SAN type"),
        ('["IP:999.1.1.1"]', "not a valid IP address"),
    ],
)
def test_invalid_extra_sans(tmp_path, value, message):
    inv = write(
        tmp_path / "hosts.yml",
        f"""
        ovms_servers:
          hosts:
            srv:
              ovms_tls_extra_sans: {value}
        """,
    )
    with pytest.raises(LauncherError, match=message) as info:
        specs_from_inventory(load_inventory([inv]))
    assert info.value.file == str(inv)
    assert "srv" in (info.value.key or "") and "ovms_tls_extra_sans" in (info.value.key or "")


def test_undefined_template_is_an_error(tmp_path):
    inv = write(
        tmp_path / "hosts.yml",
        """
        ovms_servers:
          hosts:
            srv:
              ovms_advertise_address: "{{ not_defined_anywhere }}"
        """,
    )
    with pytest.raises(LauncherError) as info:
        load_inventory([inv])
    assert info.value.key == "srv: ovms_advertise_address"


def test_inventory_without_launcher_groups(tmp_path):
    inv = write(tmp_path / "hosts.yml", "web:\n  hosts:\n    www-1:\n")
    inventory = load_inventory([inv])
    assert inventory.servers == () and inventory.clients == ()
    assert [h.name for h in inventory.group("web")] == ["www-1"]
    with pytest.raises(LauncherError, match="no hosts in the groups ovms_servers or ovms_clients"):
        specs_from_inventory(inventory)


def test_a_host_named_like_the_controller_certificate_gets_no_certificates(tmp_path):
    """A host `launcher` would merge with clients/launcher/ and receive the controller's own key."""
    inv = write(
        tmp_path / "hosts.yml",
        """
        all:
          children:
            ovms_servers: {hosts: {srv: {}}}
            ovms_clients: {hosts: {launcher: {ovms_client_server: srv}}}
        """,
    )
    with pytest.raises(LauncherError) as raised:
        specs_from_inventory(load_inventory([inv]))
    assert raised.value.key == "launcher" and "rename the host" in (raised.value.fix or "")
