"""The monitoring's placement and scrape configs (plugins/filter/ovms_monitoring.py), computed from the
inventory: what each host runs, what Prometheus scrapes (single-system on the private network, remote
hosts over mTLS with the host's name verified), the hosts it cannot reach, and the sidecar addresses the
nginx templates write (the proxy's and the gateway's) and the gateway's TLS settings, the proxy's."""

from __future__ import annotations

import re

import pytest
import yaml

from testbed.paths import PROJECT_ROOT
from testbed.plugins import load_plugin

pytestmark = [pytest.mark.observability]

MONITORING = load_plugin("plugins/filter/ovms_monitoring.py")
ROLES = PROJECT_ROOT / "roles"
TLS_FILES = {"ca_file": "/t/ca-bundle.pem", "cert_file": "/t/client.pem", "key_file": "/t/client.key"}
SETTINGS = {
    "tls_files": TLS_FILES,
    "defaults": {
        "ovms_tls_port": 9443,
        "ovms_monitoring_gateway_port": 9444,
        "ovms_server_container_name": "ovms-server",
        "ovms_server_rest_port": 8000,
        "ovms_tls_container_name": "ovms-server-tls",
        "ovms_monitoring_gateway_container_name": "ovms-monitoring-gateway",
    },
}


def _groups(servers=(), clients=(), monitoring=()) -> dict[str, list[str]]:
    return {"ovms_servers": list(servers), "ovms_clients": list(clients), "ovms_monitoring": list(monitoring)}


def _scrape(groups, hostvars, host="mon"):
    return MONITORING.ovms_monitoring_scrape_configs(groups, hostvars, host, SETTINGS)


def _by_job(configs):
    return {c["job_name"]: c for c in configs}


def _job(config) -> str:
    """The `job` label a scrape config gives its targets (its name, or the relabelled one)."""
    for relabel in config.get("relabel_configs", []):
        if relabel.get("target_label") == "job":
            return relabel["replacement"]
    return config["job_name"]


def test_single_system_scrapes_on_the_private_network_without_tls():
    groups = _groups(["localhost"], ["localhost"], ["localhost"])
    configs = _by_job(_scrape(groups, {"localhost": {}}, "localhost"))
    assert set(configs) == {"ovms_server", "ovms_client", "ovms_node"}
    assert configs["ovms_server"]["static_configs"] == [
        {"targets": ["ovms-server:8000"], "labels": {"host": "localhost"}}
    ]
    clients = configs["ovms_client"]
    assert clients["http_sd_configs"] == [{"url": "http://ovms-monitoring-gateway:9444/sd"}]
    assert clients["honor_labels"] is True
    relabels = clients["relabel_configs"]
    assert {"target_label": "__address__", "replacement": "ovms-monitoring-gateway:9444"} in relabels
    assert {
        "source_labels": ["container"],
        "target_label": "__metrics_path__",
        "replacement": "/metrics/client/$1",
    } in relabels
    assert configs["ovms_node"]["static_configs"][0]["targets"] == ["127.0.0.1:9100"]
    assert not MONITORING.ovms_monitoring_uses_tls(list(configs.values()))
    assert MONITORING.ovms_monitoring_unreachable(groups, {"localhost": {}}, "localhost", SETTINGS) == []


def test_remote_hosts_are_scraped_over_mtls_with_their_name_verified():
    groups = _groups(["srv"], ["cam"], ["mon"])
    hostvars = {"srv": {"ansible_host": "10.0.0.1"}, "cam": {"ansible_host": "10.0.0.2"}, "mon": {}}
    configs = _scrape(groups, hostvars)
    assert MONITORING.ovms_monitoring_uses_tls(configs)
    by_job = _by_job(configs)
    # one scrape config per remote host and job (its own server_name), each labelled as the job
    for name, path, target in [
        ("ovms_server/srv", "/metrics", "10.0.0.1:9443"),
        ("ovms_nginx/srv", "/metrics/nginx", "10.0.0.1:9443"),
        ("ovms_node/srv", "/metrics/node", "10.0.0.1:9443"),
        ("ovms_nginx/cam", "/metrics/nginx", "10.0.0.2:9444"),
        ("ovms_node/cam", "/metrics/node", "10.0.0.2:9444"),
    ]:
        config = by_job[name]
        host = name.split("/")[1]
        assert config["scheme"] == "https" and config["metrics_path"] == path, name
        assert config["tls_config"] == {**TLS_FILES, "server_name": host}, name
        assert config["static_configs"] == [{"targets": [target], "labels": {"host": host}}], name
        assert _job(config) == name.split("/")[0]
    clients = by_job["ovms_client/cam"]
    assert clients["http_sd_configs"] == [
        {"url": "https://10.0.0.2:9444/sd", "tls_config": {**TLS_FILES, "server_name": "cam"}}
    ]
    assert {"target_label": "__address__", "replacement": "10.0.0.2:9444"} in clients["relabel_configs"]
    assert _job(clients) == "ovms_client" and clients["scheme"] == "https"
    # the monitoring host's own node exporter, beside Prometheus
    assert by_job["ovms_node"]["static_configs"] == [
        {"targets": ["127.0.0.1:9100"], "labels": {"host": "mon"}}
    ]
    probes = by_job["ovms_tls_expiry"]
    assert probes["params"] == {"module": ["ovms_tls"]}
    assert [s["targets"][0] for s in probes["static_configs"]] == ["10.0.0.1:9443", "10.0.0.2:9444"]
    assert {"target_label": "__address__", "replacement": "127.0.0.1:9115"} in probes["relabel_configs"]
    # every job of the contract, once per target
    assert {_job(c) for c in configs} == set(MONITORING.JOBS)


def test_the_monitoring_hosts_own_proxy_and_gateway_are_dialled_by_container_name():
    """In remote mode on the monitoring host itself (its advertised address may be one only other hosts
    reach), over mTLS still, on the private network Prometheus joins."""
    groups = _groups(["box"], ["box", "cam"], ["box"])
    hostvars = {
        "box": {"ovms_tls_enabled": True, "ansible_host": "127.0.0.1"},
        "cam": {"ansible_host": "10.0.0.2"},
    }
    by_job = _by_job(_scrape(groups, hostvars, "box"))
    assert by_job["ovms_server/box"]["static_configs"][0]["targets"] == ["ovms-server-tls:9443"]
    assert by_job["ovms_server/box"]["tls_config"]["server_name"] == "box"
    assert by_job["ovms_client/box"]["http_sd_configs"][0]["url"] == "https://ovms-monitoring-gateway:9444/sd"
    assert by_job["ovms_nginx/box"]["static_configs"][0]["targets"] == [
        "ovms-server-tls:9443",
        "ovms-monitoring-gateway:9444",
    ]
    # its node exporter is beside Prometheus; the other client host's through its gateway
    assert by_job["ovms_node"]["static_configs"][0]["targets"] == ["127.0.0.1:9100"]
    assert by_job["ovms_node/cam"]["static_configs"][0]["targets"] == ["10.0.0.2:9444"]
    probes = [s["targets"][0] for s in by_job["ovms_tls_expiry"]["static_configs"]]
    assert probes == ["ovms-server-tls:9443", "ovms-monitoring-gateway:9444", "10.0.0.2:9444"]


def test_each_host_reads_its_own_ports_and_advertised_address():
    groups = _groups(["srv"], ["cam"], ["mon"])
    hostvars = {
        "srv": {"ovms_advertise_address": "srv.example", "ovms_tls_port": "9555"},
        "cam": {"ansible_host": "fd00::2", "ovms_monitoring_gateway_port": 9666},
        "mon": {},
    }
    by_job = _by_job(_scrape(groups, hostvars))
    assert by_job["ovms_server/srv"]["static_configs"][0]["targets"] == ["srv.example:9555"]
    assert by_job["ovms_nginx/cam"]["static_configs"][0]["targets"] == ["[fd00::2]:9666"]


def test_a_host_with_the_monitoring_off_has_no_exporters_scraped():
    groups = _groups(["srv"], ["cam"], ["mon"])
    hostvars = {
        "srv": {"ovms_monitoring_enabled": "false"},
        "cam": {"ovms_monitoring_enabled": False},
        "mon": {},
    }
    jobs = set(_by_job(_scrape(groups, hostvars)))
    # the proxy's /metrics and its certificate are there whatever the host says; its exporters are not
    assert jobs == {"ovms_server/srv", "ovms_node", "ovms_tls_expiry"}


def test_a_single_system_host_that_is_not_the_monitoring_host_is_unreachable():
    groups = _groups(["shop"], ["shop"], ["mon"])
    hostvars = {"shop": {}, "mon": {}}
    unreachable = MONITORING.ovms_monitoring_unreachable(groups, hostvars, "mon", SETTINGS)
    assert [u.split(":")[0] for u in unreachable] == ["shop (server)", "shop (client)"]
    assert all("ovms_tls_enabled: true" in u for u in unreachable)
    # with mTLS forced on that host, it is scraped through its proxy and gateway
    hostvars["shop"]["ovms_tls_enabled"] = True
    assert MONITORING.ovms_monitoring_unreachable(groups, hostvars, "mon", SETTINGS) == []
    assert {"ovms_server/shop", "ovms_client/shop"} <= set(_by_job(_scrape(groups, hostvars)))


@pytest.mark.parametrize(
    ("groups", "hostvars", "expected"),
    [
        # single system: everything on the monitoring host
        (_groups(["a"], ["a"], ["a"]), {"a": {}}, {"a": "monitoring"}),
        # remote: the server's beside its proxy, the client host's beside its gateway
        (
            _groups(["s"], ["c"], ["m"]),
            {"s": {}, "c": {}, "m": {}},
            {"s": "proxy", "c": "gateway", "m": "monitoring"},
        ),
        # a remote server that is also a client host: beside the proxy, once
        (_groups(["s"], ["s", "c"], ["m"]), {"s": {}, "c": {}, "m": {}}, {"s": "proxy", "c": "gateway"}),
        # the monitoring host is a remote server too: beside Prometheus, not the proxy
        (_groups(["s"], ["c"], ["s"]), {"s": {}, "c": {}}, {"s": "monitoring", "c": "gateway"}),
        # a camera-only host: none
        ({**_groups(["s"], ["s"], ["s"]), "ovms_cameras": ["cam"]}, {"s": {}, "cam": {}}, {"cam": ""}),
    ],
)
def test_exactly_one_node_exporter_per_host(groups, hostvars, expected):
    for host, place in expected.items():
        assert MONITORING.ovms_monitoring_node_place(groups, hostvars, host) == place, host
        assert place in (*MONITORING.PLACES, "")


def test_the_roles_of_a_host():
    groups = _groups(["s"], ["c", "s"], ["m"])
    hostvars = {"s": {}, "c": {}, "m": {}}
    roles = {h: MONITORING.ovms_monitoring_roles(groups, hostvars, h) for h in ("s", "c", "m")}
    assert roles["s"] == {
        "monitoring": False,
        "server": True,
        "client": True,
        "proxy": True,
        "gateway_tls": True,
        "node_place": "proxy",
    }
    assert roles["c"]["gateway_tls"] and not roles["c"]["proxy"]
    assert roles["m"] == {
        "monitoring": True,
        "server": False,
        "client": False,
        "proxy": False,
        "gateway_tls": False,
        "node_place": "monitoring",
    }
    # a role run on its own (no group): its own server and client, as ovms_common_tls says
    alone = MONITORING.ovms_monitoring_roles({}, {"box": {"ovms_tls_enabled": True}}, "box")
    assert alone["server"] and alone["client"] and alone["proxy"] and alone["gateway_tls"]


# --- the sidecars' addresses and the gateway's TLS: written in the templates, the same ---------------


def _code(path) -> str:
    return "\n".join(line.split("#", 1)[0] for line in path.read_text().splitlines())


def test_the_nginx_templates_use_the_sidecar_addresses_of_the_filter():
    listen = MONITORING.LISTEN
    for template in (
        ROLES / "ovms_tls_proxy" / "templates" / "ovms-proxy.conf.j2",
        ROLES / "ovms_monitoring" / "templates" / "gateway.conf.j2",
    ):
        code = _code(template)
        assert f"listen {listen['stub_status']};" in code, template
        assert f"proxy_pass http://{listen['nginx']}/metrics;" in code, template
        assert f"proxy_pass http://{listen['node']}/metrics;" in code, template
        # no other loopback address
        assert set(re.findall(r"127\.0\.0\.1:[0-9]+", code)) == {
            listen[k] for k in ("stub_status", "nginx", "node")
        }
    blackbox = _code(ROLES / "ovms_monitoring" / "templates" / "blackbox.yml.j2")
    assert f"  {MONITORING.PROBE_MODULE}:" in blackbox
    variables = (ROLES / "ovms_monitoring" / "vars" / "main.yml").read_text()
    assert "127.0.0.1:" not in variables and "ovms.edge.ovms_monitoring_listen" in variables


def _tls_lines(path) -> list[str]:
    return [
        line.strip()
        for line in _code(path).splitlines()
        if line.strip().startswith(("ssl_", "ssl_conf_command"))
    ]


def test_the_gateway_speaks_the_proxys_tls():
    proxy = _tls_lines(ROLES / "ovms_tls_proxy" / "templates" / "ovms-proxy.conf.j2")
    gateway = _tls_lines(ROLES / "ovms_monitoring" / "templates" / "gateway.conf.j2")
    # the same directives; the gateway's template reads ovms_tls_allow_tls12 with the proxy role's default
    assert [line.replace(" | default(false)", "") for line in gateway] == proxy
    assert "ssl_verify_client on;" in gateway and any(line.startswith("ssl_crl ") for line in gateway)


def test_the_gateway_passes_only_client_containers_and_get():
    code = _code(ROLES / "ovms_monitoring" / "templates" / "gateway.conf.j2")
    [client] = re.findall(r"location ~ (.+) \{$", code, re.MULTILINE)
    assert client.startswith("^/metrics/client/({{ ovms_client_container_prefix | regex_escape }}-")
    assert client.endswith("-[0-9]+)$")  # <prefix>-<profile>-<instance>: never a name of another host
    # every location but the loopback stub_status (and the 404 of everything else) is GET only
    assert code.count("limit_except GET") == code.count("location =") + code.count("location ~") - 1
    assert "return 404;" in code and "resolver 127.0.0.11" in code


def test_the_role_defaults_are_the_contracts():
    defaults = yaml.safe_load((ROLES / "ovms_monitoring" / "defaults" / "main.yml").read_text())
    assert {
        k: defaults[k]
        for k in (
            "ovms_monitoring_image",
            "ovms_monitoring_bind_address",
            "ovms_monitoring_port",
            "ovms_monitoring_data_dir",
            "ovms_monitoring_retention",
            "ovms_monitoring_retention_size",
            "ovms_monitoring_scrape_interval",
            "ovms_monitoring_evaluation_interval",
            "ovms_monitoring_client_down_for",
            "ovms_monitoring_fps_for",
            "ovms_monitoring_fps_ratio",
            "ovms_monitoring_disk_ratio",
            "ovms_monitoring_cert_margin_days",
            "ovms_monitoring_gateway_port",
            "ovms_monitoring_gateway_bind_address",
            "ovms_monitoring_network",
        )
    } == {
        "ovms_monitoring_image": "ovms-launcher/monitoring:dev",
        "ovms_monitoring_bind_address": "127.0.0.1",
        "ovms_monitoring_port": 9090,
        "ovms_monitoring_data_dir": "/var/lib/ovms-launcher/monitoring",
        "ovms_monitoring_retention": "30d",
        "ovms_monitoring_retention_size": "2GB",
        "ovms_monitoring_scrape_interval": "15s",
        "ovms_monitoring_evaluation_interval": "15s",
        "ovms_monitoring_client_down_for": "1m",
        "ovms_monitoring_fps_for": "2m",
        "ovms_monitoring_fps_ratio": 0.9,
        "ovms_monitoring_disk_ratio": 0.9,
        "ovms_monitoring_cert_margin_days": 2,
        "ovms_monitoring_gateway_port": 9444,
        "ovms_monitoring_gateway_bind_address": "0.0.0.0",
        "ovms_monitoring_network": "ovms-monitoring",
    }
