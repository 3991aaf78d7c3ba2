"""The roles' own modules, lookups and filters that decide something: the remote-mode rule, the
local-access rules, what the models role copies, what the prechecks read from the host."""

from __future__ import annotations

import pytest

from testbed.paths import PROJECT_ROOT
from testbed.plugins import load_plugin

ROLES = PROJECT_ROOT / "roles"


COMMON = load_plugin("plugins/filter/ovms_common.py")
# the rule logic of the module ovms_local_access (and of the local-access guard image)
ACCESS = load_plugin("plugins/module_utils/ovms_local_access.py")
MODELS = load_plugin("plugins/filter/ovms_models.py")
STATE = load_plugin("plugins/modules/ovms_models_state.py")
PRECHECK = load_plugin("plugins/modules/ovms_precheck.py")


# --- remote (mTLS) mode: one rule ----------------------------------------------------------------


def _plan(clients, enabled=(), forced=None, servers=("srv",)):
    return COMMON.tls_plan(list(servers), dict(clients), {h: True for h in enabled}, forced or {})


def test_single_system_has_no_tls():
    assert _plan({"srv": "srv"}) == {"servers": [], "clients": {}}


def test_a_client_on_another_host_turns_its_server_and_every_client_of_it_remote():
    plan = _plan({"cam": "srv", "srv": "srv"})
    assert plan == {"servers": ["srv"], "clients": {"cam": "srv", "srv": "srv"}}


def test_tls_enabled_on_a_server_or_a_client_forces_it_on_one_host():
    assert _plan({"srv": "srv"}, enabled=["srv"])["servers"] == ["srv"]
    assert _plan({"srv": "srv"}, enabled=["srv"])["clients"] == {"srv": "srv"}


def test_a_forced_proxy_setting_wins():
    assert _plan({"cam": "srv"}, forced={"srv": False})["servers"] == []
    assert _plan({"srv": "srv"}, forced={"srv": True}) == {"servers": ["srv"], "clients": {"srv": "srv"}}


def test_the_filter_reads_the_inventory_like_the_roles():
    groups = {"ovms_servers": ["a", "b"], "ovms_clients": ["a", "cam"]}
    hostvars = {"a": {}, "b": {"ovms_tls_enabled": "true"}, "cam": {"ovms_client_server": "b"}}
    plan = COMMON.ovms_tls_plan(groups, hostvars)
    assert plan == {"servers": ["b"], "clients": {"cam": "b"}}


# --- local access --------------------------------------------------------------------------------


OURS = (
    '-A OUTPUT -o {i} -m owner ! --uid-owner 0 -m comment --comment "ovms-launcher local-access {n}" '
    "-j REJECT"
)


def test_local_access_rules_are_read_from_iptables_output():
    output = "\n".join(
        [
            "-P OUTPUT ACCEPT",
            OURS.format(i="br-0123456789ab", n="net-a") + " --reject-with icmp-port-unreachable",
            '-A OUTPUT -o br-ba9876543210 -m comment --comment "someone else" -j ACCEPT',
            OURS.format(i="br-ffffffffffff", n="net-b"),
            '-A OUTPUT -m comment --comment "unbalanced',
        ]
    )
    assert ACCESS.parse_rules(output) == [
        {"network": "net-a", "interface": "br-0123456789ab"},
        {"network": "net-b", "interface": "br-ffffffffffff"},
    ]


def test_local_access_replaces_a_stale_bridge_and_removes_unwanted_rules_only():
    existing = [
        {"network": "net-a", "interface": "br-old"},
        {"network": "net-b", "interface": "br-b"},
        {"network": "other", "interface": "br-x"},
    ]
    remove, add = ACCESS.plan(existing, {"net-a": "br-new", "net-b": "br-b"})
    assert remove == [{"network": "net-a", "interface": "br-old"}]
    assert add == [{"network": "net-a", "interface": "br-new"}]
    remove, add = ACCESS.plan(existing, {"net-a": "", "net-b": ""})
    assert remove == existing[:2] and add == []


# --- models: what is copied ----------------------------------------------------------------------


def test_only_versions_whose_checksums_differ_are_copied(tmp_path):
    prepared = [
        {"name": "m", "version": 1, "src": "/c/m/1", "sums": "a  model.xml\n"},
        {"name": "m", "version": 2, "src": "/c/m/2", "sums": "b  model.xml\n"},
        {"name": "n", "version": 1, "src": "/c/n/1", "sums": "c  model.xml\n"},
    ]
    server = {"m/1": "a  model.xml", "m/2": "damaged\n"}
    assert [(e["name"], e["version"]) for e in MODELS.ovms_models_stale(prepared, server)] == [
        ("m", 2),
        ("n", 1),
    ]
    assert MODELS.ovms_models_dirs(prepared, "/srv/models", ["/srv/models/old/3"]) == [
        "/srv/models/m/1",
        "/srv/models/m/2",
        "/srv/models/n/1",
        "/srv/models/old/3",
    ]


def test_the_models_state_lists_versions_and_their_checksums(tmp_path):
    (tmp_path / "m" / "1").mkdir(parents=True)
    (tmp_path / "m" / "1" / "checksums.sha256").write_text("x  model.xml\n")
    (tmp_path / "m" / "2").mkdir()
    (tmp_path / "m" / "latest").mkdir()
    (tmp_path / ".staging" / "m-3").mkdir(parents=True)
    (tmp_path / "empty").mkdir()
    state = STATE.read_state(tmp_path)
    assert state["versions"] == {"m": [1, 2]}
    assert state["sums"] == {"m/1": "x  model.xml\n", "m/2": ""}
    assert state["version_dirs"] == [str(tmp_path / "m" / "1"), str(tmp_path / "m" / "2")]
    assert STATE.read_state(tmp_path / "absent") == {"versions": {}, "sums": {}, "version_dirs": []}


# --- prechecks: what the host says -----------------------------------------------------------------


def test_listening_ports_are_read_from_proc(tmp_path):
    header = (
        "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
    )
    (tmp_path / "tcp").write_text(
        header
        + "   0: 00000000:24E3 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1\n"
        + "   1: 0100007F:1F90 0100007F:D2F0 01 00000000:00000000 00:00000000 00000000     0        0 2\n"
    )
    (tmp_path / "tcp6").write_text(
        header
        + "   0: 00000000000000000000000000000000:2382 00000000000000000000000000000000:0000 0A 0 0 0 0 0 3\n"
    )
    assert PRECHECK.listening_ports(str(tmp_path)) == {9443, 9090}


def test_the_filesystem_of_a_path_is_its_longest_mount_point(tmp_path):
    mounts = tmp_path / "mounts"
    mounts.write_text(
        "/dev/sda1 / ext4 rw 0 0\nserver:/export /srv/models nfs4 rw 0 0\n"
        "tmpfs /srv/models/cache tmpfs rw 0 0\n/dev/sdb1 /srv/model ext4 rw 0 0\n"
    )
    assert PRECHECK.filesystem_type("/srv/models/person", str(mounts)) == "nfs4"
    assert PRECHECK.filesystem_type("/srv/models", str(mounts)) == "nfs4"
    assert PRECHECK.filesystem_type("/srv/models/cache/x", str(mounts)) == "tmpfs"
    assert PRECHECK.filesystem_type("/srv/modelsx", str(mounts)) == "ext4"


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        (9443, (9443, "prechecks_ports")),
        ("80", (80, "prechecks_ports")),
        ({"port": 1, "variable": "ovms_tls_port"}, (1, "ovms_tls_port")),
    ],
)
def test_a_port_is_a_number_or_names_its_variable(entry, expected):
    assert PRECHECK._port(entry) == expected


def test_a_host_outside_both_groups_is_its_own_server_and_client():
    """A role run on its own (Molecule, a playbook of one's own) still follows ovms_tls_enabled."""
    plan = COMMON.ovms_tls_plan({"all": ["box"]}, {"box": {"ovms_tls_enabled": True}}, "box")
    assert plan == {"servers": ["box"], "clients": {"box": "box"}}
    assert COMMON.ovms_tls_plan({}, {"box": {}}, "box") == {"servers": [], "clients": {}}
