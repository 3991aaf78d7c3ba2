"""The monitoring's certificates: `launcher certs` issues a client certificate to each monitoring host
with monitoring enabled and a server certificate to each client host whose metrics gateway serves mTLS;
`certs check` reports them; `launcher deploy` renews the gateways' server certificates like the servers'.
And the certificate lifetimes are the roles' (`ovms_common_pki_lifetimes`), never a second copy."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from cryptography import x509

from launcher.cli import main
from launcher.errors import LauncherError
from launcher.inventory import CLIENTS_GROUP, MONITORING_GROUP, SERVERS_GROUP, load_inventory
from launcher.pki import Kind, PkiLayout, generate
from launcher.pki import lifetimes as lifetimes_module
from launcher.pki.deploy_renewal import renew_before_deploy
from launcher.pki.lifetimes import (
    DEFAULT_CA_DAYS,
    DEFAULT_CLIENT_DAYS,
    DEFAULT_RENEW_WITHIN,
    DEFAULT_SERVER_DAYS,
    DEFAULT_SERVER_RENEW_WITHIN,
    LIFETIMES_VAR,
)
from launcher.pki.plan import specs_from_inventory
from testbed.paths import PROJECT_ROOT

pytestmark = pytest.mark.observability

NOW = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)
COMMON_DEFAULTS = PROJECT_ROOT / "roles" / "ovms_common" / "defaults" / "main.yml"
ON = {"ovms_monitoring_enabled": True}


def fleet(
    tmp_path: Path, every: dict[str, Any] | None = None, cam: dict[str, Any] | None = None, **groups: Any
) -> Path:
    """A server, a client host dialling it (remote mode) and a monitoring host; `every`: all's vars."""
    children = {
        SERVERS_GROUP: {"hosts": {"srv": {"ansible_host": "192.0.2.10"}}},
        CLIENTS_GROUP: {
            "hosts": {
                "cam": {
                    "ansible_host": "192.0.2.20",
                    "ovms_advertise_address": "cam.shop.example",
                    "ovms_tls_extra_sans": ["DNS:metrics.shop.example"],
                    **(cam or {}),
                }
            }
        },
        MONITORING_GROUP: {"hosts": {"mon": {"ansible_host": "192.0.2.30"}}},
        **groups,
    }
    path = tmp_path / "inventory" / "hosts.yml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump({"all": {"children": children, "vars": every or {}}}), encoding="utf-8")
    return path


def kinds(specs) -> dict[tuple[str, str], tuple[x509.GeneralName, ...]]:
    return {(s.kind.value, s.name): s.sans for s in specs}


# --- lifetimes -----------------------------------------------------------------------------------


def test_the_launchers_lifetimes_are_the_roles():
    role = yaml.safe_load(COMMON_DEFAULTS.read_text(encoding="utf-8"))[LIFETIMES_VAR]
    assert (
        role["server_days"],
        timedelta(days=role["server_renew_within_days"]),
        role["client_days"],
        timedelta(days=role["renew_within_days"]),
        role["ca_days"],
    ) == (
        DEFAULT_SERVER_DAYS,
        DEFAULT_SERVER_RENEW_WITHIN,
        DEFAULT_CLIENT_DAYS,
        DEFAULT_RENEW_WITHIN,
        DEFAULT_CA_DAYS,
    )


# Every default of the PKI code, imported with a changed mapping: each must follow it (a literal left
# anywhere keeps its old value).
_PROBE = """
import inspect, json
import launcher.common_defaults as common
real = common.common_defaults()
lifetimes = {k: v + 1 for k, v in real["ovms_common_pki_lifetimes"].items()}
common.common_defaults = lambda: {**real, "ovms_common_pki_lifetimes": lifetimes}
from importlib import import_module
certs = import_module("launcher.commands.certs")
check, generate, module, renew, revoke = (
    import_module(f"launcher.pki.{name}") for name in ("check", "generate", "lifetimes", "renew", "revoke")
)

def default(function, name):
    return inspect.signature(function).parameters[name].default

def option(command, name):
    return next(p.default for p in command.params if p.name == name)

options, life, days = generate.GenerateOptions(), module.Lifetimes(), lambda d: d.days
print(json.dumps({
    "mapping": lifetimes,
    "server_days": [options.server_days, life.server_days, default(check.check, "server_days"),
                    option(certs.generate_command, "server_days")],
    "server_renew_within_days": [days(options.server_renew_within), days(life.server_renew_within),
                                 days(default(check.check, "server_renew_within")),
                                 days(default(renew.due_server_certificates, "renew_within"))],
    "client_days": [options.days, life.client_days, option(certs.generate_command, "days")],
    "renew_within_days": [days(options.renew_within), days(life.renew_within),
                          days(default(check.check, "renew_within")),
                          days(default(revoke.revoke, "renew_within"))],
    "ca_days": [options.ca_days, option(certs.generate_command, "ca_days")],
}))
"""


def test_no_lifetime_is_written_twice():
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE],
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    seen = json.loads(proc.stdout)
    mapping = seen.pop("mapping")
    assert set(seen) == set(mapping)
    for key, values in seen.items():
        assert values == [mapping[key]] * len(values), key


@pytest.mark.parametrize(
    "value",
    [
        None,
        {"server_days": 30},
        {
            "server_days": 0,
            "server_renew_within_days": 1,
            "client_days": 1,
            "renew_within_days": 1,
            "ca_days": 1,
        },
        {
            "server_days": "30",
            "server_renew_within_days": 1,
            "client_days": 1,
            "renew_within_days": 1,
            "ca_days": 1,
        },
    ],
)
def test_a_broken_lifetimes_mapping_names_the_file_and_the_key(monkeypatch, value):
    monkeypatch.setattr(lifetimes_module, "common_default", lambda name: value)
    with pytest.raises(LauncherError) as caught:
        lifetimes_module.role_lifetimes.__wrapped__()
    assert caught.value.key == LIFETIMES_VAR and caught.value.file == str(COMMON_DEFAULTS)
    assert "ca_days" in caught.value.message and caught.value.fix


# --- which certificates --------------------------------------------------------------------------


def test_monitoring_enabled_adds_the_monitoring_hosts_client_and_the_gateways_server_certificate(tmp_path):
    specs = kinds(specs_from_inventory(load_inventory([fleet(tmp_path, ON)])))
    assert set(specs) == {
        ("server", "srv"),
        ("server", "cam"),  # the clients' metrics gateway serves mTLS: cam's clients dial srv over mTLS
        ("client", "cam"),
        ("client", "mon"),  # Prometheus scrapes with it
        ("client", "launcher"),
    }
    # the gateway's SANs are a server's: name, ansible_host, ovms_advertise_address, extra SANs
    assert [str(n.value) for n in specs[("server", "cam")]] == [
        "cam",
        "192.0.2.20",
        "cam.shop.example",
        "metrics.shop.example",
    ]
    assert specs[("client", "mon")] == (x509.DNSName("mon"),)


def test_monitoring_disabled_adds_nothing(tmp_path):
    plain = kinds(specs_from_inventory(load_inventory([fleet(tmp_path)])))
    assert set(plain) == {("server", "srv"), ("client", "cam"), ("client", "launcher")}
    # off on the client host only: no gateway certificate, the monitoring host's still
    off = kinds(
        specs_from_inventory(load_inventory([fleet(tmp_path / "b", ON, {"ovms_monitoring_enabled": False})]))
    )
    assert ("server", "cam") not in off and ("client", "mon") in off


def test_extra_vars_enable_it_over_the_inventory(tmp_path):
    inventory = load_inventory([fleet(tmp_path)])
    specs = kinds(specs_from_inventory(inventory, {"ovms_monitoring_enabled": "true"}))  # -e key=value: text
    assert {("server", "cam"), ("client", "mon")} <= set(specs)
    assert set(
        kinds(
            specs_from_inventory(
                load_inventory([fleet(tmp_path / "b", ON)]), {"ovms_monitoring_enabled": "no"}
            )
        )
    ) == {
        ("server", "srv"),
        ("client", "cam"),
        ("client", "launcher"),
    }


def test_a_host_with_two_parts_gets_one_certificate_of_each_kind(tmp_path):
    """The monitoring host is also a client host (one client certificate); a server that is also a client
    host keeps its server certificate for the gateway."""
    path = fleet(
        tmp_path,
        ON,
        **{},
    )
    data = yaml.safe_load(path.read_text())
    children = data["all"]["children"]
    children[CLIENTS_GROUP]["hosts"]["srv"] = None  # srv's own clients: its gateway is on srv
    children[MONITORING_GROUP]["hosts"]["cam"] = None  # cam monitors too
    path.write_text(yaml.safe_dump(data))
    specs = specs_from_inventory(load_inventory([path]))
    names = [(s.kind.value, s.name) for s in specs]
    assert len(names) == len(set(names)), names
    assert set(names) == {
        ("server", "srv"),
        ("server", "cam"),
        ("client", "srv"),
        ("client", "cam"),
        ("client", "mon"),
        ("client", "launcher"),
    }
    srv = next(s for s in specs if s.kind is Kind.SERVER and s.name == "srv")
    assert [str(n.value) for n in srv.sans] == ["srv", "192.0.2.10"]


def test_a_single_system_client_host_gets_no_gateway_certificate(tmp_path):
    """Server, clients and Prometheus on one host without ovms_tls_enabled: nothing is dialled over mTLS."""
    path = tmp_path / "hosts.yml"
    box = {"hosts": {"box": {"ansible_connection": "local"}}}
    path.write_text(
        yaml.safe_dump(
            {"all": {"vars": ON, "children": {SERVERS_GROUP: box, CLIENTS_GROUP: box, MONITORING_GROUP: box}}}
        )
    )
    names = {(s.kind.value, s.name) for s in specs_from_inventory(load_inventory([path]))}
    assert names == {("server", "box"), ("client", "box"), ("client", "launcher")}


# --- the commands ---------------------------------------------------------------------------------


def certs(*args: str):
    return CliRunner().invoke(main, ["certs", *args], env={"COLUMNS": "220"})


def test_certs_generate_then_check_with_the_monitoring(tmp_path):
    inventory, directory = str(fleet(tmp_path)), str(tmp_path / "certs")
    generated = certs("generate", "--dir", directory, "-i", inventory, "-e", "ovms_monitoring_enabled=true")
    assert generated.exit_code == 0, generated.output
    assert "created   servers/cam" in generated.output and "created   clients/mon" in generated.output
    checked = certs(
        "check", "--dir", directory, "-i", inventory, "-e", "ovms_monitoring_enabled=true", "--json"
    )
    assert checked.exit_code == 0, checked.output
    report = json.loads(checked.output)
    leaves = {(c["kind"], c["name"]) for c in report["certificates"]}
    assert {("server", "cam"), ("client", "mon")} <= leaves and report["ok"] is True
    # without the extra vars the inventory asks for neither: check reports them as not wanted, not missing
    unasked = certs("check", "--dir", directory, "-i", inventory, "--json")
    assert unasked.exit_code == 0, unasked.output


def test_certs_check_reports_a_missing_gateway_certificate(tmp_path):
    inventory, directory = fleet(tmp_path), str(tmp_path / "certs")
    assert certs("generate", "--dir", directory, "-i", str(inventory)).exit_code == 0
    monitored = str(fleet(tmp_path / "on", ON))
    checked = certs("check", "--dir", directory, "-i", monitored, "--json")
    assert checked.exit_code == 1, checked.output
    rows = {(c["kind"], c["name"]): c for c in json.loads(checked.output)["certificates"]}
    assert rows[("server", "cam")]["problems"] and rows[("client", "mon")]["problems"]


def test_deploy_renews_the_gateways_server_certificate(tmp_path, monkeypatch):
    layout = PkiLayout(tmp_path / "certs")
    monkeypatch.setenv("OVMS_LAUNCHER_CERTS_DIR", str(layout.root))
    inventory = fleet(tmp_path, ON)
    generate(layout, specs_from_inventory(load_inventory([inventory])), now=NOW)
    inside = NOW + timedelta(days=DEFAULT_SERVER_DAYS) - DEFAULT_SERVER_RENEW_WITHIN + timedelta(days=1)
    assert renew_before_deploy([inventory], {}, now=NOW + timedelta(days=1)) == []
    renewed = renew_before_deploy([inventory], {}, now=inside)
    assert sorted(r.name for r in renewed) == ["cam", "srv"]
    assert all(r.new_not_after == inside + timedelta(days=DEFAULT_SERVER_DAYS) for r in renewed)
    # --limit: the gateway alone
    later = inside + timedelta(days=DEFAULT_SERVER_DAYS) - DEFAULT_SERVER_RENEW_WITHIN + timedelta(days=1)
    assert [r.name for r in renew_before_deploy([inventory], {}, limit="cam", now=later)] == ["cam"]


def test_deploy_renews_no_gateway_certificate_with_monitoring_off(tmp_path, monkeypatch):
    layout = PkiLayout(tmp_path / "certs")
    monkeypatch.setenv("OVMS_LAUNCHER_CERTS_DIR", str(layout.root))
    generate(layout, specs_from_inventory(load_inventory([fleet(tmp_path / "on", ON)])), now=NOW)
    inside = NOW + timedelta(days=DEFAULT_SERVER_DAYS) - DEFAULT_SERVER_RENEW_WITHIN + timedelta(days=1)
    assert [r.name for r in renew_before_deploy([fleet(tmp_path)], {}, now=inside)] == ["srv"]
    # the deploy's extra vars turn it on
    extra = {"ovms_monitoring_enabled": True}
    assert sorted(r.name for r in renew_before_deploy([fleet(tmp_path)], extra, now=inside)) == ["cam"]


def test_the_deploy_checks_the_gateways_certificate_against_its_address(tmp_path, monkeypatch):
    from launcher.validate import validate

    layout = PkiLayout(tmp_path / "certs")
    monkeypatch.setenv("OVMS_LAUNCHER_CERTS_DIR", str(layout.root))
    every = {**ON, "ovms_server_models": [{"name": "person-detection"}]}
    generate(layout, specs_from_inventory(load_inventory([fleet(tmp_path, every)])))
    report = validate([fleet(tmp_path, every)], certificates=True)
    assert report.ok, [p.to_dict() for p in report.problems]
    moved = fleet(tmp_path / "moved", every, {"ovms_advertise_address": "cam-2.shop.example"})
    [problem] = validate([moved], certificates=True).problems
    assert problem.file == str(layout.leaf_cert(Kind.SERVER, "cam")) and problem.key == "subjectAltName"
    assert "'cam-2.shop.example'" in problem.message and problem.hosts == ("cam",)
    # the monitoring host's client certificate is checked too (here: another CA's)
    other = PkiLayout(tmp_path / "other")
    generate(other, specs_from_inventory(load_inventory([fleet(tmp_path, every)])))
    for name in ("client.pem", "client.key"):
        (layout.leaf_dir(Kind.CLIENT, "mon") / name).write_bytes(
            (other.leaf_dir(Kind.CLIENT, "mon") / name).read_bytes()
        )
    [problem] = validate([fleet(tmp_path, every)], certificates=True).problems
    assert problem.key == "issuer" and problem.hosts == ("mon",)
