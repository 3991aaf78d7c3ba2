"""The monitoring's placement and scrape configs (plugins/filter/ovms_monitoring.py), computed from the
inventory: what each host runs, what Prometheus scrapes (single-system on the private network, remote
hosts over mTLS with the host's name verified), the hosts it cannot reach, and the sidecar addresses the
nginx templates write (the proxy's and the gateway's) and the gateway's TLS settings, the proxy's."""

from __future__ import annotations

import re

import pytest
import yaml
from ansible.errors import AnsibleFilterError

from testbed.paths import PROJECT_ROOT
from testbed.plugins import load_plugin

pytestmark = [pytest.mark.observability]

MONITORING = load_plugin("plugins/filter/ovms_monitoring.py")
ROLES = PROJECT_ROOT / "roles"
TLS_FILES = {"ca_file": "/t/ca-bundle.pem", "cert_file": "/t/client.pem", "key_file": "/t/client.key"}
# as if the inventory set ovms_monitoring_enabled: true for all (ovms_common's default is false:
# test_a_host_that_does_not_set_the_monitoring_has_ovms_commons_default)
SETTINGS = {
    "enabled_default": True,
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
    # a container's own labels never replace the target's (job, instance, host, container, profile)
    assert clients["honor_labels"] is False
    assert clients["target_limit"] == 200 and clients["sample_limit"] == 5000
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


def test_the_plan_is_read_from_the_calling_hosts_own_fact_only():
    """Under --limit the first server may be outside the play, its hostvars an inventory-set
    ovms_common_tls: a host reads only its own fact (a server's or client's), else recomputes."""
    groups = _groups(["s"], ["c", "s"], ["m"])
    off = {"servers": [], "clients": {}}
    real = MONITORING._common().ovms_tls_plan(groups, {"s": {}, "c": {}, "m": {}}, None)
    assert real["servers"] == ["s"]
    hostvars = {"s": {"ovms_common_tls": off}, "c": {"ovms_common_tls": real}, "m": {}}
    assert MONITORING.ovms_monitoring_roles(groups, hostvars, "c")["gateway_tls"]
    assert MONITORING.ovms_monitoring_roles(groups, hostvars, "s")["proxy"] is False  # its own fact
    # the monitoring host is neither server nor client: the plan is recomputed, s's fact not read
    assert MONITORING._Inventory(groups, hostvars, "m", SETTINGS).plan == real


# --- the sidecars' addresses and the gateway's TLS: written in the templates, the same ---------------


def _code(path) -> str:
    return "\n".join(line.split("#", 1)[0] for line in path.read_text().splitlines())


def _env(folder):
    """A Jinja environment with the filters the nginx templates use (Ansible's, approximated)."""
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(folder)),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,  # as Ansible's template module
        autoescape=False,  # an nginx config, not HTML
    )
    env.filters["bool"] = lambda value: str(value).strip().lower() in ("1", "true", "yes", "on")
    env.filters["regex_escape"] = re.escape
    env.filters["ovms.edge.ovms_monitoring_listen"] = MONITORING.ovms_monitoring_listen
    return env


COMMON = yaml.safe_load((ROLES / "ovms_common" / "defaults" / "main.yml").read_text())
LAYOUT = COMMON["ovms_common_pki_layout"]
# a remote inventory: the server srv, the client hosts cam1 and cam2, Prometheus on mon
REMOTE = _groups(["srv"], ["cam1", "cam2"], ["mon"])
REMOTE_VARS = {"srv": {}, "cam1": {}, "cam2": {}, "mon": {"ovms_monitoring_enabled": True}}


def _gateway_vars(tls: bool = True, node: bool = True) -> dict:
    monitoring = yaml.safe_load((ROLES / "ovms_monitoring" / "vars" / "main.yml").read_text())
    return {
        "ansible_managed": "test",
        "ovms_monitoring_roles": {"gateway_tls": tls, "node_place": "gateway" if node else ""},
        "ovms_monitoring_metrics_peers": MONITORING.ovms_monitoring_metrics_peers(
            REMOTE, REMOTE_VARS, LAYOUT["controller"], COMMON["ovms_monitoring_enabled"]
        ),
        "ovms_monitoring_tls_mount": monitoring["ovms_monitoring_tls_mount"],
        "ovms_monitoring_sd_mount": monitoring["ovms_monitoring_sd_mount"],
        "ovms_common_pki_layout": LAYOUT,
        "ovms_monitoring_gateway_port": 9444,
        "ovms_client_container_prefix": "ovms-client",
        "ovms_client_metrics_port": 9464,
    }


def _code_of(text: str) -> str:
    return "\n".join(line.split("#", 1)[0] for line in text.splitlines())


def render_gateway(variables: dict) -> str:
    return _env(ROLES / "ovms_monitoring" / "templates").get_template("gateway.conf.j2").render(**variables)


def render_proxy(monitoring: bool, **variables: object) -> str:
    """The proxy's site of server srv of the remote inventory (its peers as the role's vars compute them)."""
    defaults = yaml.safe_load((ROLES / "ovms_tls_proxy" / "defaults" / "main.yml").read_text())
    values = {
        **{k: v for k, v in defaults.items() if not (isinstance(v, str) and "{{" in v)},
        "ansible_managed": "test",
        "ovms_tls_port": 9443,
        "ovms_tls_upstream_host": "ovms-server",
        "ovms_tls_upstream_grpc_port": 9000,
        "ovms_tls_upstream_rest_port": 8000,
        "ovms_common_pki_layout": LAYOUT,
        "ovms_monitoring_enabled": monitoring,
        "ovms_tls_proxy_monitoring_node": monitoring,
        "ovms_tls_proxy_metrics_peers": MONITORING.ovms_monitoring_metrics_peers(
            REMOTE, REMOTE_VARS, LAYOUT["controller"], COMMON["ovms_monitoring_enabled"]
        ),
        **variables,
    }
    return _env(ROLES / "ovms_tls_proxy" / "templates").get_template("ovms-proxy.conf.j2").render(**values)


def test_the_nginx_templates_use_the_sidecar_addresses_of_the_filter():
    for name, template in (
        ("proxy", ROLES / "ovms_tls_proxy" / "templates" / "ovms-proxy.conf.j2"),
        ("gateway", ROLES / "ovms_monitoring" / "templates" / "gateway.conf.j2"),
    ):
        code = _code(template)
        assert "listen {{ 'stub_status' | ovms.edge.ovms_monitoring_listen }};" in code, template
        for sidecar in ("nginx", "node"):
            assert (
                f"proxy_pass http://{{{{ '{sidecar}' | ovms.edge.ovms_monitoring_listen }}}}/metrics;" in code
            )
        # no loopback address of their own
        assert not re.search(r"127\.0\.0\.1:", code), template
        # rendered: the filter's addresses
        text = render_proxy(True) if name == "proxy" else render_gateway(_gateway_vars())
        listen = MONITORING.LISTEN
        assert f"listen {listen['stub_status']};" in text
        assert f"proxy_pass http://{listen['nginx']}/metrics;" in text
        assert f"proxy_pass http://{listen['node']}/metrics;" in text
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
    # and its certificates where its own container mounts them (the proxy's: /etc/ovms-tls)
    assert [
        line.replace(" | default(false)", "").replace("{{ ovms_monitoring_tls_mount }}/", "/etc/ovms-tls/")
        for line in gateway
    ] == proxy
    assert "/etc/ovms-" not in _code(ROLES / "ovms_monitoring" / "templates" / "gateway.conf.j2")
    assert "ssl_verify_client on;" in gateway and any(line.startswith("ssl_crl ") for line in gateway)


def test_the_gateway_passes_only_client_containers_and_get():
    code = _code(ROLES / "ovms_monitoring" / "templates" / "gateway.conf.j2")
    [client] = re.findall(r"location ~ (.+) \{$", code, re.MULTILINE)
    assert client.startswith(
        "^/metrics/client/(?<ovms_client>{{ ovms_client_container_prefix | regex_escape }}-"
    )
    # <prefix>-<profile>-<instance>, no '.' in the profile part: Docker's DNS would forward a dotted name
    # it does not know to the host's resolvers (test_the_gateway_refuses_dotted_container_names)
    assert client.endswith("-[A-Za-z0-9_-]+-[0-9]+)$")
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


# --- who reads the metrics (the map of $ssl_client_s_dn), the client path, other hosts' values ------


def _dn(name: str) -> str:
    """nginx's $ssl_client_s_dn of a certificate the PKI issues for `name` (RFC 2253: the CN first)."""
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    from launcher.pki.authority import ORGANIZATION

    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANIZATION),
            x509.NameAttribute(NameOID.COMMON_NAME, name),
        ]
    )
    return subject.rfc4514_string()


def _peer(peers, dn: str) -> str:
    """The map's value for `dn` (nginx tries the regular expressions in order; the default: client)."""
    return next((p["peer"] for p in peers if re.search(p["dn"], dn)), "client")


def test_the_metrics_readers_are_the_controller_and_the_enabled_monitoring_hosts():
    groups = _groups(["srv"], ["cam", "box"], ["mon", "box", "off", "unset"])
    hostvars = {
        "mon": {"ovms_monitoring_enabled": True},
        "box": {"ovms_monitoring_enabled": "true"},
        "off": {"ovms_monitoring_enabled": False},
        "unset": {},
        "cam": {},
    }
    peers = MONITORING.ovms_monitoring_metrics_peers(groups, hostvars, "launcher", False)
    # a monitoring host that is no client host reads the metrics only; one that is a client host (its
    # certificate is its clients') and the controller (`launcher status` asks the models) infer too
    assert [(p["name"], p["peer"]) for p in peers] == [
        ("launcher", "reader"),
        ("mon", "monitor"),
        ("box", "reader"),
    ]
    assert _dn("mon") == "CN=mon,O=ovms-launcher"
    assert _peer(peers, _dn("mon")) == "monitor" and _peer(peers, _dn("launcher")) == "reader"
    for other in ("cam", "srv", "off", "unset", "mon2", "xmon", "mon.example", "launcher-1", "box2"):
        assert _peer(peers, _dn(other)) == "client", other
    # a dotted name is matched literally; an escaped ',' in a CN (RFC 2253) is no end of the CN
    dotted = MONITORING.ovms_monitoring_metrics_peers(_groups(monitoring=["mon.lan"]), {}, "launcher", True)
    assert _peer(dotted, _dn("mon.lan")) == "monitor" and _peer(dotted, _dn("monxlan")) == "client"
    assert _peer(peers, "CN=mon\\,O=ovms-launcher,O=ovms-launcher") == "client"
    assert all("(?:" in p["dn"] and "(," not in p["dn"] for p in peers)  # no capture: $1 of a location
    # a host that does not set it: ovms_common's default
    on = MONITORING.ovms_monitoring_metrics_peers(groups, hostvars, "launcher", True)
    assert "unset" in [p["name"] for p in on] and "off" not in [p["name"] for p in on]


@pytest.mark.parametrize("name", ["mon host", 'mon"', "mon;", "mon}", "-mon", "mon.", "*.lan", ""])
def test_a_metrics_reader_that_is_no_dns_name_is_refused(name):
    with pytest.raises(AnsibleFilterError, match="no DNS host name"):
        MONITORING.ovms_monitoring_metrics_peers(_groups(monitoring=[name]), {}, "launcher", True)
    with pytest.raises(AnsibleFilterError, match="the controller's certificate name"):
        MONITORING.ovms_monitoring_metrics_peers(_groups(), {}, name, True)


def test_the_names_are_checked_with_the_rules():
    assert MONITORING._host_name("a-b.example.") and MONITORING._host_name("x" * 63)
    assert not MONITORING._host_name("x" * 64) and not MONITORING._host_name("a_b")
    assert not MONITORING._host_name(".".join(["x" * 63] * 4) + "xx")  # 254 characters


def test_a_host_that_does_not_set_the_monitoring_has_ovms_commons_default():
    assert COMMON["ovms_monitoring_enabled"] is False
    groups = _groups(["srv"], ["cam"], ["mon"])
    hostvars = {"srv": {}, "cam": {}, "mon": {"ovms_monitoring_enabled": True}}
    off = {**SETTINGS, "enabled_default": COMMON["ovms_monitoring_enabled"]}
    jobs = set(_by_job(MONITORING.ovms_monitoring_scrape_configs(groups, hostvars, "mon", off)))
    assert jobs == {"ovms_server/srv", "ovms_node", "ovms_tls_expiry"}
    jobs = set(_by_job(MONITORING.ovms_monitoring_scrape_configs(groups, hostvars, "mon", SETTINGS)))
    assert {"ovms_client/cam", "ovms_nginx/srv", "ovms_node/srv", "ovms_node/cam"} <= jobs
    # the role passes ovms_common's default, read from its defaults file
    variables = yaml.safe_load((ROLES / "ovms_monitoring" / "vars" / "main.yml").read_text())
    assert (
        variables["ovms_monitoring_scrape_settings"]["enabled_default"]
        == "{{ ovms_monitoring_enabled_default }}"
    )
    assert "ovms_common/defaults/main.yml" in variables["ovms_monitoring_enabled_default"]


def test_every_scrape_config_is_limited():
    configs = _scrape(_groups(["srv", "mon"], ["cam", "mon"], ["mon"]), {"srv": {}, "cam": {}, "mon": {}})
    for config in configs:
        clients = _job(config) == "ovms_client"
        assert config["sample_limit"] == (5000 if clients else 20000), config["job_name"]
        assert config["body_size_limit"] == "10MB" and config["label_limit"] > 0
        assert config["label_name_length_limit"] > 0 and config["label_value_length_limit"] > 0
        assert ("target_limit" in config) is ("http_sd_configs" in config)
        assert not config.get("honor_labels", False)


@pytest.mark.parametrize(
    ("host", "variables", "variable"),
    [
        ("srv", {"ovms_advertise_address": "srv.example/evil"}, "ovms_advertise_address"),
        ("srv", {"ovms_advertise_address": "srv example"}, "ovms_advertise_address"),
        ("srv", {"ansible_host": "10.0.0.1\n  - job_name: x"}, "ansible_host"),
        ("cam", {"ansible_host": "fd00::zz"}, "ansible_host"),
        ("cam", {"ansible_host": "-cam"}, "ansible_host"),
        ("srv", {"ovms_tls_port": 0}, "ovms_tls_port"),
        ("srv", {"ovms_tls_port": "65536"}, "ovms_tls_port"),
        ("srv", {"ovms_tls_port": "94 43"}, "ovms_tls_port"),
        ("srv", {"ovms_tls_port": True}, "ovms_tls_port"),
        ("cam", {"ovms_monitoring_gateway_port": "x"}, "ovms_monitoring_gateway_port"),
    ],
)
def test_other_hosts_values_are_checked(host, variables, variable):
    groups = _groups(["srv"], ["cam"], ["mon"])
    hostvars = {"srv": {}, "cam": {}, "mon": {}, host: variables}
    with pytest.raises(AnsibleFilterError) as error:
        _scrape(groups, hostvars)
    assert f"host {host}: {variable} " in str(error.value)


def test_the_monitoring_hosts_own_container_names_are_checked():
    groups = _groups(["box"], ["box"], ["box"])
    settings = {**SETTINGS, "defaults": {**SETTINGS["defaults"], "ovms_server_container_name": "a/b:1"}}
    with pytest.raises(AnsibleFilterError, match="host box: ovms_server_container_name 'a/b:1'"):
        MONITORING.ovms_monitoring_scrape_configs(groups, {"box": {}}, "box", settings)


def test_only_ipv6_addresses_are_bracketed():
    groups = _groups(["a", "b", "c"], [], ["mon"])
    hostvars = {
        "a": {"ansible_host": "fd00::1", "ovms_tls_enabled": True},
        "b": {"ansible_host": "b.lan.", "ovms_tls_enabled": True},
        "c": {"ovms_tls_enabled": True},
        "mon": {},
    }
    by_job = _by_job(_scrape(groups, hostvars))
    assert [by_job[f"ovms_server/{h}"]["static_configs"][0]["targets"][0] for h in "abc"] == [
        "[fd00::1]:9443",
        "b.lan.:9443",
        "c:9443",
    ]


def test_the_gateway_refuses_dotted_container_names():
    text = render_gateway(_gateway_vars())
    [pattern] = re.findall(r"location ~ (.+) \{$", text, re.MULTILINE)
    client = re.compile(pattern.replace("(?<", "(?P<"))  # nginx's PCRE, approximated by Python's re
    assert "proxy_pass http://$ovms_client:9464/metrics;" in text
    for path in ("/metrics/client/ovms-client-person-1", "/metrics/client/ovms-client-a_b-c-12"):
        assert client.match(path), path
    for path in (
        "/metrics/client/ovms-client-x.attacker.example.com-1",
        "/metrics/client/ovms-client-x-1.attacker.example.com",
        "/metrics/client/ovms-client-x-1.",
        "/metrics/client/ovms-client-.-1",
        "/metrics/client/ovms-client-x-1/../x",
        "/metrics/client/other-x-1",
        "/x/metrics/client/ovms-client-x-1",
        "/metrics/client/ovms-client-x-1:80",
        "/metrics/client/ovms-client-x-a",
    ):
        assert not client.search(path), path
    # `$` of PCRE (and re) also matches before a last newline (%0A): the name nginx dials excludes it
    assert client.match("/metrics/client/ovms-client-x-1\n").group(1) == "ovms-client-x-1"


def test_the_gateway_lets_only_the_metrics_readers_in():
    text = render_gateway(_gateway_vars())
    code = "\n".join(line.split("#", 1)[0] for line in text.splitlines())
    [the_map] = re.findall(r"map \$ssl_client_s_dn \$ovms_metrics_peer \{\n(.*?)\n\}", code, re.DOTALL)
    entries = [line.strip() for line in the_map.splitlines()]
    assert entries == ["default client;", '"~^CN=launcher(?:,|$)" reader;', '"~^CN=mon(?:,|$)" monitor;']
    # every location of the mTLS server but the 404 refuses the others
    [server] = [b for b in code.split("\nserver {")[1:] if "listen 9444 ssl;" in b]
    locations = re.findall(r"location [^{]+\{(.*?)\n    \}", server, re.DOTALL)
    assert len(locations) == 5  # /sd, the clients, nginx, node, everything else
    for body in locations[:-1]:
        assert "if ($ovms_metrics_peer = client) {\n            return 403;" in body, body
    assert "alias /etc/ovms-metrics/sd.json;" in code and "ssl_crl /etc/ovms-tls/crl.pem;" in code
    # single-system (private network, no TLS): no certificate to check
    plain = _code_of(render_gateway(_gateway_vars(tls=False)))
    assert "$ssl_client_s_dn" not in plain and "ovms_metrics_peer" not in plain and "ssl" not in plain


def test_the_proxy_lets_only_the_metrics_readers_read_the_metrics():
    text = render_proxy(True, ovms_tls_rest_port=9445)
    code = "\n".join(line.split("#", 1)[0] for line in text.splitlines())
    [the_map] = re.findall(r"map \$ssl_client_s_dn \$ovms_metrics_peer \{\n(.*?)\n\}", code, re.DOTALL)
    assert [line.strip() for line in the_map.splitlines()] == [
        "default client;",
        '"~^CN=launcher(?:,|$)" reader;',
        '"~^CN=mon(?:,|$)" monitor;',
    ]
    refused = {
        "client": "if ($ovms_metrics_peer = client) {",
        "monitor": "if ($ovms_metrics_peer = monitor) {",
    }
    servers = code.split("\nserver {")[1:]
    [grpc] = [s for s in servers if "listen 9443 ssl http2;" in s]
    [rest] = [s for s in servers if "listen 9445 ssl;" in s]
    for server, location, who in [
        (grpc, "location = /metrics {", "client"),
        (grpc, "location = /metrics/nginx {", "client"),
        (grpc, "location = /metrics/node {", "client"),
        (grpc, "location / {", "monitor"),
        (rest, "location ^~ /metrics {", "client"),
        (rest, "location / {", "monitor"),
    ]:
        body = server[server.index(location) :]
        body = body[: body.index("\n    }")]
        assert refused[who] in body and "return 403;" in body, (location, body)
        assert refused["client" if who == "monitor" else "monitor"] not in body, location
    # without the monitoring (and rendered as the benchmark does, without the peers): the controller only
    # would read /metrics; with no list at all, nobody (403)
    bench = render_proxy(False, ovms_tls_proxy_metrics_peers=[])
    assert "default client;" in bench and "if ($ovms_metrics_peer = client)" in bench
