"""Sites (ovms_site): launcher/sites.py, the default-server rule of plugins/filter/ovms_common.py as
the roles and the launcher apply it, validate's site warnings and per-site summary, the example
fleet and the benchmark's generated fleet."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from launcher.cli import main
from launcher.inventory import load_inventory
from launcher.sites import Site, site_of, sites, unsited
from launcher.validate import validate
from launcher.validate import variables as validate_variables
from launcher.validate.common_role import filters

pytestmark = pytest.mark.fleet

PROJECT_ROOT = Path(__file__).resolve().parents[2]
FLEET = PROJECT_ROOT / "inventories" / "example-fleet"


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def _fleet_copy(tmp_path: Path) -> Path:
    copy = tmp_path / "fleet"
    shutil.copytree(FLEET, copy)
    return copy


def _edit_hosts(folder: Path, edit) -> None:  # type: ignore[no-untyped-def]
    hosts = folder / "hosts.yml"
    data = yaml.safe_load(hosts.read_text(encoding="utf-8"))
    edit(data["all"]["children"])
    hosts.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")


def _groups_and_hostvars(folder: Path) -> tuple[dict[str, list[str]], dict[str, dict]]:
    """What Ansible gives the filters: `groups` (inventory order) and `hostvars`."""
    inventory = load_inventory([folder])
    groups: dict[str, list[str]] = {}
    for host in inventory.hosts.values():
        for group in host.groups:
            groups.setdefault(group, []).append(host.name)
    return groups, {name: dict(host.vars) for name, host in inventory.hosts.items()}


# --- launcher/sites.py ----------------------------------------------------------------------------


def test_sites_of_the_example_fleet():
    inventory = load_inventory([FLEET])
    found = sites(inventory)
    assert list(found) == ["store-a", "store-b", "store-c"]
    assert found["store-a"] == Site(
        "store-a", servers=("store-a-server",), clients=("store-a-cam-1", "store-a-cam-2")
    )
    assert found["store-c"].clients == ("store-c-cam-1", "store-c-cam-2")
    assert found["store-b"].hosts == ("store-b-server", "store-b-cam-1")
    assert unsited(inventory) == []
    assert site_of(inventory.host("store-c-cam-2")) == "store-c"


def test_hosts_without_a_site_and_templated_sites(tmp_path):
    inv = _write(
        tmp_path / "hosts.yml",
        "all:\n  children:\n    ovms_servers:\n      hosts:\n        s1:\n        s2:\n"
        "          ovms_site: '{{ store }}'\n          store: north\n"
        "    ovms_clients:\n      hosts:\n        c1:\n          ovms_site: ''\n        c2:\n"
        "          ovms_site: north\n",
    )
    inventory = load_inventory([inv])
    assert site_of(inventory.host("s1")) == ""
    assert site_of(inventory.host("c1")) == ""
    assert site_of(inventory.host("s2")) == "north"
    assert list(sites(inventory)) == ["north"]
    assert sites(inventory)["north"].hosts == ("s2", "c2")
    assert unsited(inventory) == ["s1", "c1"]


# --- the default-server rule: the filter (roles) and the launcher agree ----------------------------


def test_the_rule_prefers_the_own_site():
    rule = filters()
    servers = ["a-srv", "b-srv", "b-srv-2"]
    first = rule.site_servers(servers, {"a-srv": "a", "b-srv": "b", "b-srv-2": "b"}.get)
    assert first == {"a": "a-srv", "b": "b-srv"}
    assert rule.default_server(servers, "cam", "b", first) == "b-srv"
    assert rule.default_server(servers, "cam", "c", first) == "a-srv"  # no server in its site
    assert rule.default_server(servers, "cam", "", first) == "a-srv"  # no site
    assert rule.default_server([], "cam", "b", {}) == "cam"


def test_the_filter_reads_each_servers_site_only_once_per_plan():
    """ovms_tls_plan builds the site -> first server map once: hostvars of a server are read a
    bounded number of times whatever the number of clients."""
    reads: dict[str, int] = {}

    class Counting(dict):
        def __getitem__(self, key: str) -> dict:
            reads[key] = reads.get(key, 0) + 1
            return super().__getitem__(key)

    servers = [f"s{i}" for i in range(20)]
    clients = [f"c{i}" for i in range(200)]
    hostvars = Counting(
        {**{s: {"ovms_site": f"site{i}"} for i, s in enumerate(servers)}}
        | {c: {"ovms_site": f"site{i % 20}"} for i, c in enumerate(clients)}
    )
    plan = filters().ovms_tls_plan({"ovms_servers": servers, "ovms_clients": clients}, hostvars)
    assert plan["clients"]["c45"] == "s5"
    assert max(reads[s] for s in servers) <= 3, reads


def test_filter_and_launcher_agree_on_the_example_fleet(tmp_path):
    fleet = _fleet_copy(tmp_path)

    def edit(children: dict) -> None:
        # store-c loses its server; store-a gets a second one, listed before store-b's
        del children["ovms_servers"]["hosts"]["store-c-server"]
        del children["ovms_sites"]["children"]["store_c"]["hosts"]["store-c-server"]
        servers = children["ovms_servers"]["hosts"]
        children["ovms_servers"]["hosts"] = {
            "store-b-server": servers["store-b-server"],
            "store-a-server": servers["store-a-server"],
            "store-a-server-2": {"ansible_host": "192.0.2.13"},
        }
        children["ovms_sites"]["children"]["store_a"]["hosts"]["store-a-server-2"] = None

    _edit_hosts(fleet, edit)
    report = validate([fleet])
    groups, hostvars = _groups_and_hostvars(fleet)
    rule = filters()
    roles = {c: rule.ovms_default_server(groups, c, hostvars) for c in groups["ovms_clients"]}
    assert roles == report.assignments
    assert report.assignments["store-a-cam-1"] == "store-a-server"  # its site's first, not the inventory's
    assert report.assignments["store-c-cam-1"] == "store-b-server"  # no server in store-c: the first
    plan = rule.ovms_tls_plan(groups, hostvars)
    assert plan["clients"] == report.assignments
    # without hostvars (an older call) the filter keeps the rule of an inventory without sites
    assert rule.ovms_default_server(groups, "store-a-cam-1") == "store-b-server"


def test_the_client_role_passes_hostvars_to_the_rule():
    defaults = yaml.safe_load((PROJECT_ROOT / "roles/ovms_client/defaults/main.yml").read_text())
    assert "ovms_default_server(inventory_hostname, hostvars)" in defaults["ovms_client_server"]


# --- validate -----------------------------------------------------------------------------------


def test_the_example_fleet_validates_with_a_line_per_site():
    report = validate([FLEET])
    assert report.ok, [p.render() for p in report.problems]
    assert report.warnings == []
    assert list(report.sites) == ["store-a", "store-b", "store-c"]
    # store-c: store-c-cam-1 runs person-detection and face-detection, store-c-cam-2 person-detection
    assert {n: s.streams for n, s in report.sites.items()} == {"store-a": 2, "store-b": 1, "store-c": 3}
    lines = report.describe().splitlines()
    assert lines[0] == "3 site(s), 3 server(s), 5 client(s)"
    assert lines[1:] == [
        "  store-a: server store-a-server; 2 client(s); 2 stream(s); 0 problem(s)",
        "  store-b: server store-b-server; 1 client(s); 1 stream(s); 0 problem(s)",
        "  store-c: server store-c-server; 2 client(s); 3 stream(s); 0 problem(s)",
    ]
    data = report.to_dict()
    assert data["sites"]["store-a"] == {
        "servers": ["store-a-server"],
        "clients": ["store-a-cam-1", "store-a-cam-2"],
        "streams": 2,
        "problems": [],
    }
    assert data["unsited"] == []


def test_an_inventory_without_sites_keeps_its_report():
    report = validate([PROJECT_ROOT / "inventories" / "localhost"])
    assert report.sites == {}
    assert report.describe().startswith("servers: localhost; clients: localhost -> localhost")
    assert "sites" not in report.to_dict()


def test_a_site_without_a_server_is_warned(tmp_path):
    """Acceptance: a client with no own-site server is warned (the example fleet, store-c's server
    removed)."""
    fleet = _fleet_copy(tmp_path)

    def edit(children: dict) -> None:
        del children["ovms_servers"]["hosts"]["store-c-server"]
        del children["ovms_sites"]["children"]["store_c"]["hosts"]["store-c-server"]

    _edit_hosts(fleet, edit)
    report = validate([fleet])
    assert report.ok, [p.render() for p in report.problems]
    by_message = {w.message: w for w in report.warnings}
    # one warning for the fact, built from the servers the validation assigned (not repeated per client)
    site = by_message["site 'store-c' has no server: its clients use store-a-server (site 'store-a')"]
    assert site.key == "ovms_site" and site.file == str(fleet / "hosts.yml")
    assert site.hosts == ("store-c-cam-1", "store-c-cam-2")
    assert not [w for w in report.warnings if "store-c-cam-1" in w.hosts and w is not site]
    assert report.sites["store-c"].servers == ()
    assert len(report.sites["store-c"].problems) == 1
    assert report.sites["store-a"].problems == ()
    # the human report: store-c's line counts them
    assert "  store-c: server none; 2 client(s); 3 stream(s); 1 problem(s)" in report.describe().splitlines()


def test_a_serverless_sites_warning_names_the_servers_set_by_extra_vars(tmp_path):
    fleet = _fleet_copy(tmp_path)

    def edit(children: dict) -> None:
        del children["ovms_servers"]["hosts"]["store-c-server"]
        del children["ovms_sites"]["children"]["store_c"]["hosts"]["store-c-server"]

    _edit_hosts(fleet, edit)
    report = validate([fleet], {"ovms_client_server": "store-b-server"})
    messages = [w.message for w in report.warnings if w.key == "ovms_site" and "no server" in w.message]
    assert messages == ["site 'store-c' has no server: its clients use store-b-server (site 'store-b')"]


def test_a_client_of_another_sites_server_and_an_idle_server_are_warned(tmp_path):
    fleet = _fleet_copy(tmp_path)

    def edit(children: dict) -> None:
        children["ovms_clients"]["hosts"]["store-b-cam-1"]["ovms_client_server"] = "store-a-server"

    _edit_hosts(fleet, edit)
    report = validate([fleet])
    assert report.ok, [p.render() for p in report.problems]
    by_message = {w.message: w for w in report.warnings}
    cross = by_message["client of site 'store-b' uses store-a-server of site 'store-a'"]
    assert cross.key == "ovms_client_server" and cross.hosts == ("store-b-cam-1",)
    assert cross.file == str(fleet / "hosts.yml")
    assert "(the default is store-b-server)" in cross.fix
    idle = by_message["server of site 'store-b' that no client uses"]
    assert idle.hosts == ("store-b-server",)
    assert set(report.sites["store-b"].problems) == {cross.message, idle.message}


def test_validate_json_carries_the_sites(tmp_path):
    result = CliRunner().invoke(main, ["validate", "-i", str(FLEET), "--json"])
    # remote mode needs the PKI: whatever the certificates say, the JSON carries the sites
    data = json.loads(result.output.strip().splitlines()[-1])
    assert sorted(data["sites"]) == ["store-a", "store-b", "store-c"]
    assert data["sites"]["store-c"]["streams"] == 3


def test_a_site_name_follows_its_rule(tmp_path):
    inv = _write(
        tmp_path / "hosts.yml",
        "all:\n  children:\n    ovms_servers:\n      hosts:\n        localhost:\n"
        "          ansible_connection: local\n          ovms_site: Store A\n",
    )
    [problem] = [p for p in validate([inv]).problems if p.key == "ovms_site"]
    assert problem.hosts == ("localhost",)
    assert "must be a site name" in problem.message
    assert problem.file == str(inv)


def test_a_site_template_that_does_not_render_is_a_problem(tmp_path):
    inv = _write(
        tmp_path / "hosts.yml",
        "all:\n  children:\n    ovms_servers:\n      hosts:\n        localhost:\n"
        "          ansible_connection: local\n          ovms_site: '{{ store_code_missing }}'\n",
    )
    report = validate([inv])
    [problem] = [p for p in report.problems if p.key == "ovms_site"]
    assert problem.file == str(inv) and problem.hosts == ("localhost",)
    assert "does not render" in problem.message and "store_code_missing" in problem.message
    assert problem.fix
    assert site_of(load_inventory([inv]).hosts["localhost"]) == ""
    assert report.sites == {}
    result = CliRunner().invoke(main, ["validate", "-i", str(inv)])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "ovms_site" in result.output


def test_site_of_is_computed_once_per_host(tmp_path, monkeypatch):
    from launcher import sites as sites_module

    inv = _write(
        tmp_path / "hosts.yml",
        "all:\n  vars: {store: a}\n  children:\n    ovms_servers:\n      hosts:\n"
        "        s1: {ovms_site: '{{ store }}'}\n",
    )
    host = load_inventory([inv]).hosts["s1"]
    calls = []
    original = sites_module._templated
    monkeypatch.setattr(sites_module, "_templated", lambda *a: calls.append(a) or original(*a))
    assert [site_of(host) for _ in range(3)] == ["a", "a", "a"]
    assert len(calls) == 1


def test_a_site_in_extra_vars_is_refused():
    report = validate([FLEET], {"ovms_site": "store-a"})
    [problem] = [p for p in report.problems if p.key == "ovms_site"]
    assert problem.file == "--extra-vars"
    assert "set it in the inventory, per site group" in problem.fix


@pytest.mark.parametrize("where", ["inventory", "extra vars"])
def test_ovms_common_tls_is_not_a_setting(tmp_path, where):
    tls = "{servers: [], clients: {}}"
    host = "        localhost: {ansible_connection: local" + (
        f", ovms_common_tls: {tls}" if where == "inventory" else ""
    )
    inv = _write(
        tmp_path / "hosts.yml", "all:\n  children:\n    ovms_servers:\n      hosts:\n" + host + "}\n"
    )
    extravars = {"ovms_common_tls": {"servers": [], "clients": {}}} if where == "extra vars" else {}
    [problem] = [p for p in validate([inv], extravars).problems if p.key == "ovms_common_tls"]
    assert problem.message == "computed by the roles (tasks/tls_plan.yml); not a setting"
    assert problem.file == ("--extra-vars" if where == "extra vars" else str(inv))
    assert problem.fix


# --- the per-distinct-values cache of the variables' checks ---------------------------------------


def test_each_host_keeps_its_own_problem_with_the_cache(tmp_path):
    inv = _write(
        tmp_path / "hosts.yml",
        "all:\n  children:\n    ovms_servers:\n      hosts:\n"
        "        s1: {ovms_site: a, ovms_server_grpc_port: 0}\n"
        "        s2: {ovms_site: b, ovms_server_grpc_port: 0}\n"
        "        s3: {ovms_site: Bad}\n        s4: {ovms_site: a}\n",
    )
    report = validate([inv])
    port = [p for p in report.problems if p.key == "ovms_server_grpc_port"]
    assert [p.hosts for p in port] == [("s1", "s2")]
    site = [p for p in report.problems if p.key == "ovms_site"]
    assert [p.hosts for p in site] == [("s3",)]


def test_own_value_variables_are_read_by_no_other_rule():
    """variables.OWN_VALUE are checked on their own (once per distinct value): no rule file or the
    rule engine may read them as another variable's context."""
    rule_texts = {p: p.read_text() for p in (PROJECT_ROOT / "roles").glob("*/meta/rules.yml")}
    engine = (PROJECT_ROOT / "plugins" / "module_utils" / "ovms_rules.py").read_text()
    for name in validate_variables.OWN_VALUE:
        mentions = sum(len(re.findall(rf"\b{name}\b", text)) for text in rule_texts.values())
        assert mentions == 1, f"{name}: {mentions} mentions in the rule files (only its own rule allowed)"
        assert name not in engine


# --- the benchmark's generated fleet -------------------------------------------------------------


def test_the_generated_fleet_validates(tmp_path):
    from bench.fleet_inventory import generate_fleet

    out = generate_fleet(tmp_path / "fleet", sites=3)
    report = validate([out])
    assert report.ok, [p.render() for p in report.problems]
    assert report.warnings == []
    assert list(report.sites) == ["store-001", "store-002", "store-003"]
    assert all(len(s.servers) == 1 and len(s.clients) == 4 for s in report.sites.values())
    assert report.assignments["store-003-client-2"] == "store-003-server"
    assert len(load_inventory([out]).hosts) == 15
