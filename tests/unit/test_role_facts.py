"""Facts written once across Python and Ansible (issue 20, item 3): the launcher reads them from the
roles (the PKI layout and the controller certificate's name from ovms_common's defaults; the
advertised-address rule, a client's default server and the files a host receives from ovms_common's
filter plugin), and where two copies must remain they are compared here: the cache and certificates
folder rules (role default rendered by ansible-core's Templar vs launcher/paths.py) and the images'
users (Dockerfile vs role vars)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from launcher import paths
from launcher.content import content
from launcher.pki import layout as pki_layout
from launcher.pki.layout import Kind, PkiLayout
from testbed.paths import PROJECT_ROOT
from testbed.plugins import load_plugin

pytestmark = pytest.mark.collection

ROLES = PROJECT_ROOT / "roles"
COMMON_DEFAULTS = yaml.safe_load((ROLES / "ovms_common" / "defaults" / "main.yml").read_text())


COMMON = load_plugin("plugins/filter/ovms_common.py")


def _role_vars(role: str, kind: str) -> dict[str, Any]:
    return yaml.safe_load((ROLES / role / kind / "main.yml").read_text()) or {}


_RENDER = """
import json, sys
from ansible.parsing.dataloader import DataLoader
from ansible.plugins.loader import init_plugin_loader
from ansible.template import Templar, trust_as_template

init_plugin_loader([sys.argv[1]])
value, variables = json.load(sys.stdin)
templar = Templar(loader=DataLoader(), variables=variables)
print(json.dumps(templar.template(trust_as_template(value))))
"""


@pytest.fixture(scope="module")
def render():
    """Render a role's templated value as ansible-core does, with the collection ovms.edge on its path
    (in a process of its own: ansible-core sets its collection loader up once per process)."""

    def _render(value: Any, variables: dict[str, Any] | None = None) -> Any:
        proc = subprocess.run(
            [sys.executable, "-c", _RENDER, str(content().collections_path)],
            input=json.dumps([value, variables or {}]),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert proc.returncode == 0, proc.stderr[-2000:]
        return json.loads(proc.stdout)

    return _render


# --- the PKI layout and the controller certificate: role defaults, read by the launcher -------------


def test_the_launchers_pki_layout_is_the_roles():
    layout = COMMON_DEFAULTS["ovms_common_pki_layout"]
    assert pki_layout.role_layout() == layout
    pki = PkiLayout(Path("/pki"))
    assert pki.bundle == Path("/pki") / layout["bundle"]
    assert pki.crl == Path("/pki") / layout["crl"]
    assert pki.ca_key == Path("/pki") / layout["ca_dir"] / layout["ca_key"]
    assert pki.previous_cert == Path("/pki") / layout["ca_dir"] / layout["previous_dir"] / layout["ca_cert"]
    for kind in Kind:
        leaf = layout["leaves"][kind.value]
        assert pki.leaf_cert(kind, "h") == Path("/pki") / leaf["dir"] / "h" / leaf["cert"]
        assert pki.leaf_key(kind, "h") == Path("/pki") / leaf["dir"] / "h" / leaf["key"]
    assert pki_layout.controller_client() == layout["controller"]


def test_the_layout_is_documented_as_it_is():
    readme = (PROJECT_ROOT / "certs" / "README.md").read_text()
    layout = COMMON_DEFAULTS["ovms_common_pki_layout"]
    for name in (layout["bundle"], layout["crl"], layout["ca_key"], layout["controller"]):
        assert name in readme, name
    assert "ovms_common_pki_layout" in readme


RECEIVED = [
    ("ovms_tls_proxy", "ovms_tls_proxy_sources", Kind.SERVER),
    ("ovms_client", "ovms_client_tls_sources", Kind.CLIENT),
    # the monitoring host scrapes with its client certificate, a client host's metrics gateway serves with
    # its server certificate
    ("ovms_monitoring", "ovms_monitoring_tls_sources", Kind.CLIENT),
    ("ovms_monitoring", "ovms_monitoring_gateway_tls_sources", Kind.SERVER),
]


@pytest.mark.parametrize(("role", "var", "kind"), RECEIVED)
def test_what_a_host_receives_is_what_the_launcher_says(render, role, var, kind):
    """The roles copy exactly PkiLayout.host_files: never a CA key, the CRL only to servers."""
    variables = {
        "ovms_common_pki_layout": COMMON_DEFAULTS["ovms_common_pki_layout"],
        "ovms_tls_certs_dir": "/pki",
        "inventory_hostname": "edge-1",
    }
    copied = render(_role_vars(role, "vars")[var], variables)
    expected = PkiLayout(Path("/pki")).host_files(kind, "edge-1")
    assert {k: Path(v) for k, v in copied.items()} == expected
    assert PkiLayout(Path("/pki")).ca_key not in expected.values()
    assert ("crl.pem" in expected) is (kind is Kind.SERVER)
    # and what the shipped layout means, written out (the filter above is the one both sides call)
    folder = "servers" if kind is Kind.SERVER else "clients"
    leaf = "server" if kind is Kind.SERVER else "client"
    spelled = {
        f"{leaf}.pem": Path(f"/pki/{folder}/edge-1/{leaf}.pem"),
        f"{leaf}.key": Path(f"/pki/{folder}/edge-1/{leaf}.key"),
        "ca-bundle.pem": Path("/pki/ca-bundle.pem"),
    }
    if kind is Kind.SERVER:
        spelled["crl.pem"] = Path("/pki/crl.pem")
    assert expected == spelled


def test_the_status_probe_reads_the_controllers_own_certificate(render):
    layout = COMMON_DEFAULTS["ovms_common_pki_layout"]
    variables = {"ovms_common_pki_layout": layout, "ovms_tls_certs_dir": "/pki"}
    files = render(_role_vars("ovms_server", "vars")["ovms_server_probe_files"], variables)
    pki = PkiLayout(Path("/pki"))
    controller = pki_layout.controller_client()
    assert Path(files[layout["leaves"]["client"]["cert"]]) == pki.leaf_cert(Kind.CLIENT, controller)
    assert Path(files[layout["bundle"]]) == pki.bundle
    status = (ROLES / "ovms_server" / "tasks" / "status.yml").read_text()
    assert (
        "ovms.edge.ovms_probe:" in status
        and "failed_when: false\n  check_mode: false\n  when: ovms_server_tls" not in status
    )


def _leaf_names(layout: dict) -> set[str]:
    names = {layout[key] for key in ("ca_cert", "ca_key", "ca_crl", "bundle", "crl")}
    return names | {leaf[key] for leaf in layout["leaves"].values() for key in ("cert", "key")}


def test_no_role_spells_a_pki_file_name():
    """The layout's file names (ca-bundle.pem, server.key, …) appear in the roles only through
    ovms_common_pki_layout: in tasks, vars and templates (the nginx configuration, the clients'
    environment, the key files' mode), never as literals outside comments."""
    layout = COMMON_DEFAULTS["ovms_common_pki_layout"]
    names = _leaf_names(layout)
    assert {"ca-bundle.pem", "server.key", "client.key"} <= names
    # a file name, not a key path of the mapping (ovms_common_pki_layout.leaves.client.key)
    alternatives = "|".join(re.escape(n) for n in sorted(names))
    pattern = re.compile(rf"(?<![\w.])(?:{alternatives})(?!\w)|clients/launcher")
    layout_file = ROLES / "ovms_common" / "defaults" / "main.yml"
    offenders = []
    for path in sorted([*ROLES.rglob("*.yml"), *ROLES.rglob("*.j2")]):
        if "molecule" in path.parts or path == layout_file:
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#", 1)[0] if not line.lstrip().startswith("#") else ""
            if pattern.search(code):
                offenders.append(f"{path.relative_to(PROJECT_ROOT)}:{number}: {line.strip()}")
    assert offenders == []


# --- the advertised address and a client's default server: one filter ------------------------------


def test_the_advertised_address_rule():
    rule = COMMON.advertised_address
    assert rule("srv", {"ovms_advertise_address": "a.example", "ansible_host": "10.0.0.1"}) == (
        "a.example",
        "ovms_advertise_address",
    )
    assert rule("srv", {"ovms_advertise_address": "", "ansible_host": "10.0.0.1"}) == (
        "10.0.0.1",
        "ansible_host",
    )
    assert rule("srv", {"ansible_host": None}) == ("srv", "inventory host name")
    hostvars = {"srv": {"ansible_host": "10.0.0.1"}}
    assert COMMON.ovms_advertised_address("srv", hostvars) == "10.0.0.1"
    assert COMMON.ovms_advertised_address("other", hostvars) == "other"


def test_the_default_server_rule():
    assert COMMON.default_server(["a", "b"], "cam") == "a"
    assert COMMON.default_server([], "cam") == "cam"
    assert COMMON.ovms_default_server({"ovms_servers": ["s1", "s2"]}, "cam") == "s1"
    assert COMMON.ovms_default_server({}, "solo") == "solo"
    # the remote-mode rule assigns the same server
    plan = COMMON.ovms_tls_plan(
        {"ovms_servers": ["s1", "s2"], "ovms_clients": ["cam"]}, {"s1": {}, "s2": {}, "cam": {}}
    )
    assert plan["clients"] == {"cam": "s1"}


def test_the_roles_use_the_filters_and_render_the_rule(render):
    hostvars = {
        "srv": {"ansible_host": "10.0.0.1", "ovms_advertise_address": "edge.example", "ovms_tls_port": 9443},
        "cam": {"ansible_host": "10.0.0.2"},
    }
    variables = {
        "groups": {"ovms_servers": ["srv"], "ovms_clients": ["cam"]},
        "hostvars": hostvars,
        "inventory_hostname": "cam",
        "ovms_client_tls": True,
        "ovms_tls_port": 9443,
        "ovms_server_container_name": "ovms-server",
        "ovms_server_grpc_port": 9000,
    }
    defaults = _role_vars("ovms_client", "defaults")
    variables["ovms_client_server"] = render(defaults["ovms_client_server"], variables)
    assert variables["ovms_client_server"] == "srv"
    assert render(defaults["ovms_client_server_address"], variables) == "edge.example:9443"
    probe = _role_vars("ovms_tls_proxy", "defaults")["ovms_tls_probe_address"]
    assert render(probe, {**variables, "inventory_hostname": "srv"}) == "edge.example"
    camera = _role_vars("ovms_camera", "vars")["ovms_camera_advertise_address"]
    assert render(camera, {**variables, "inventory_hostname": "cam"}) == "10.0.0.2"
    written = "\n".join(p.read_text() for p in ROLES.rglob("*.yml") if "molecule" not in p.parts)
    assert "default(ansible_host" not in written and "['ovms_servers'] | default([]) | first" not in written


def test_the_launchers_inventory_applies_the_same_rule(tmp_path):
    from launcher.inventory import load_inventory

    inventory = tmp_path / "hosts.yml"
    inventory.write_text(
        yaml.safe_dump(
            {"all": {"children": {"ovms_servers": {"hosts": {
                "a": {"ansible_host": "10.0.0.1"},
                "b": {"ansible_host": "10.0.0.2", "ovms_advertise_address": "b.example"},
                "c": None,
            }}}}}
        )
    )  # fmt: skip
    loaded = load_inventory([inventory])
    for server in loaded.servers:
        assert server.advertise_address == COMMON.advertised_address(server.name, server.vars)[0]
    assert [s.advertise_address for s in loaded.servers] == ["10.0.0.1", "b.example", "c"]


# --- two copies that must stay equal: folder rules, image users --------------------------------------


ENV_CASES = {
    "override": {"OVMS_LAUNCHER_CACHE": "{tmp}/cache", "OVMS_LAUNCHER_CERTS_DIR": "{tmp}/pki"},
    "override-with-tilde": {"OVMS_LAUNCHER_CACHE": "~/c", "OVMS_LAUNCHER_CERTS_DIR": "~/p"},
    "xdg": {"XDG_CACHE_HOME": "{tmp}/xdg-cache", "XDG_DATA_HOME": "{tmp}/xdg-data"},
    "relative-xdg-is-ignored": {"XDG_CACHE_HOME": "rel/cache", "XDG_DATA_HOME": "rel/data"},
    "nothing-set": {},
}
RULE_VARIABLES = ("OVMS_LAUNCHER_CACHE", "OVMS_LAUNCHER_CERTS_DIR", "XDG_CACHE_HOME", "XDG_DATA_HOME")


@pytest.mark.parametrize("case", list(ENV_CASES))
def test_the_role_folder_defaults_follow_the_launchers_rules(render, tmp_path, monkeypatch, case):
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for name in RULE_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    for name, value in ENV_CASES[case].items():
        monkeypatch.setenv(name, value.format(tmp=tmp_path))
    assert Path(render(COMMON_DEFAULTS["ovms_common_cache_dir"])) == paths.cache_dir()
    # the roles never see a checkout: the launcher's rule for an installed launcher (it always passes
    # OVMS_LAUNCHER_CERTS_DIR itself)
    monkeypatch.setattr(paths, "_checkout", lambda: None)
    assert Path(render(COMMON_DEFAULTS["ovms_tls_certs_dir"])) == paths.default_certs_dir()


def test_the_shipped_profiles_are_found_from_the_role_itself(render):
    value = _role_vars("ovms_client", "defaults")["ovms_client_profiles_src"]
    assert "playbook_dir" not in value
    role_path = str(content().roles / "ovms_client")
    assert Path(render(value, {"role_path": role_path})).resolve() == content().profiles.resolve()


IMAGE_USERS = {
    # image folder -> (role, uid variable, gid variable) of the role that runs it
    "tls-proxy": ("ovms_tls_proxy", "ovms_tls_proxy_uid", "ovms_tls_proxy_gid"),
    "client": ("ovms_client", "ovms_client_uid", "ovms_client_gid"),
    "camera-sim": ("ovms_camera", "ovms_camera_uid", "ovms_camera_gid"),
    "ovms-double": ("ovms_server", "ovms_server_uid", "ovms_server_gid"),
    "monitoring": ("ovms_monitoring", "ovms_monitoring_uid", "ovms_monitoring_gid"),
}
# images another role runs too: the monitoring's metrics gateway and exporters run the tls-proxy image
ALSO_RUN_BY = [("tls-proxy", ("ovms_monitoring", "ovms_monitoring_proxy_uid", "ovms_monitoring_proxy_gid"))]


@pytest.mark.parametrize(("image", "runner"), [*IMAGE_USERS.items(), *ALSO_RUN_BY])
def test_each_images_user_is_the_roles(image, runner):
    dockerfile = (PROJECT_ROOT / "images" / image / "Dockerfile").read_text()
    user = re.search(r"^USER (\d+):(\d+)\s*$", dockerfile, re.MULTILINE)
    assert user, f"images/{image}/Dockerfile has no numeric USER uid:gid"
    role, uid, gid = runner
    role_vars = _role_vars(role, "vars")
    assert (str(role_vars[uid]), str(role_vars[gid])) == user.groups()
    assert re.search(rf"--uid {user.group(1)} --gid {user.group(2)}\b", dockerfile)


def test_no_role_spells_an_image_user():
    offenders = [
        f"{path.relative_to(PROJECT_ROOT)}: {line.strip()}"
        for path in ROLES.rglob("*.yml")
        if "molecule" not in path.parts
        for line in path.read_text().splitlines()
        if re.search(r"""(owner|group|user):\s*["']?500\d""", line)
    ]
    assert offenders == []
