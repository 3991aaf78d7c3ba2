"""Filters of role ovms_monitoring: what each host runs for the monitoring and what Prometheus
scrapes, computed once from the inventory (the launcher's groups, playbooks/vars/groups.yml, and the
remote-mode rule of plugins/filter/ovms_common.py).

- `ovms_monitoring_roles`: this host's part: monitoring host, server, client, mTLS proxy, whether its
  clients' metrics gateway speaks mTLS, and where its one node exporter runs (`node_place`).
- `ovms_monitoring_node_place`: beside Prometheus on a monitoring host; else beside the mTLS proxy on a
  server that runs one; else beside the metrics gateway on a client host; else none ('').
- `ovms_monitoring_listen`: the loopback address of a sidecar (nginx's stub_status, the nginx, node and
  blackbox exporters); the nginx templates of role ovms_tls_proxy and of role ovms_monitoring write the
  same addresses (tests/unit/test_monitoring_filter.py compares them).
- `ovms_monitoring_scrape_configs`: Prometheus's scrape configs (the jobs of JOB); a remote host is
  scraped over mTLS with the monitoring host's client certificate, verified against the CA bundle with
  the host's inventory name (its certificate's first name): one scrape config per remote host and job,
  its `job` label relabelled to the job.
- `ovms_monitoring_unreachable`: the hosts a monitoring host cannot scrape (a single-system server or
  client on another host: nothing of it is published), each with why; the role stops on them.
- `ovms_monitoring_metrics_peers`: the client certificates (by CN) that may read the metrics the mTLS
  proxy and the clients' metrics gateway serve: the controller's own (`launcher status`) and each enabled
  monitoring host's; the nginx templates turn the list into a `map` of $ssl_client_s_dn.

Other hosts' values written into Prometheus's config are checked here (the monitoring host's own rule
check sees only its own): an address is a DNS name or an IP address, a port 1..65535, a container name a
plain name; anything else stops the role (AnsibleFilterError naming the host and the variable).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ansible.errors import AnsibleFilterError

# Sidecars listen on the loopback of the namespace they share (never published): nginx's stub_status
# (read by the nginx exporter), the nginx exporter, the node exporter, the blackbox exporter.
LISTEN = {
    "stub_status": "127.0.0.1:8081",
    "nginx": "127.0.0.1:9113",
    "node": "127.0.0.1:9100",
    "blackbox": "127.0.0.1:9115",
}
# Prometheus's jobs (the `job` label the alert rules of templates/alerts.yml.j2 select by): the servers'
# OVMS, the client containers, nginx's counters, the node exporters, the TLS probes
JOB = {
    "servers": "ovms_server",
    "clients": "ovms_client",
    "nginx": "ovms_nginx",
    "node": "ovms_node",
    "tls": "ovms_tls_expiry",
}
JOBS = tuple(JOB.values())
# the paths of the sidecars' metrics behind a proxy or gateway, and of the clients' list
NGINX_PATH = "/metrics/nginx"
NODE_PATH = "/metrics/node"
CLIENT_PATH = "/metrics/client/"
SD_PATH = "/sd"
# the blackbox exporter's module (templates/blackbox.yml.j2)
PROBE_MODULE = "ovms_tls"
# node exporter placements
PLACES = ("monitoring", "proxy", "gateway")
# Per scrape config: at most this many samples (clients, others), this large a body, this many labels
# per series; an http_sd job (a client host's list of its containers) at most this many targets. A
# scrape over a limit fails (the target is down), so one host cannot flood Prometheus.
SAMPLE_LIMIT = {"clients": 5000, "others": 20000}
BODY_SIZE_LIMIT = "10MB"
LABEL_LIMIT = 64
LABEL_NAME_LENGTH_LIMIT = 128
LABEL_VALUE_LENGTH_LIMIT = 1024
TARGET_LIMIT = 200
# The rules of ovms_common (roles/ovms_common/meta/rules.yml) the values are checked with: a DNS name,
# a container name
RULES_ROLE = Path(__file__).resolve().parents[2] / "roles" / "ovms_common"
# The value of nginx's map of $ssl_client_s_dn (`$ovms_metrics_peer` of the proxy's and the gateway's
# templates) for a certificate that may read the metrics and call inference, one that may read the
# metrics only (a monitoring host that is no client host), and every other (inference only)
PEER_READER = "reader"
PEER_MONITOR = "monitor"
PEER_CLIENT = "client"


def _common() -> Any:
    """plugins/filter/ovms_common.py (the groups, the remote-mode rule, the advertised address): imported
    as Ansible runs it, by its path when a test loads this file by path."""
    try:
        from ansible_collections.ovms.edge.plugins.filter import ovms_common
    except ImportError:
        import importlib.util

        path = Path(__file__).resolve().parent / "ovms_common.py"
        spec = importlib.util.spec_from_file_location("ovms_edge_common_filter", path)
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot load {path}") from None
        ovms_common = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(ovms_common)
    return ovms_common


def _flag(value: object) -> bool:
    """A boolean as the inventory writes it (ovms_common's reading of ovms_tls_enabled)."""
    return bool(_common()._flag(value))


def _vars(hostvars: Mapping[str, Any], host: str) -> Mapping[str, Any]:
    # not hostvars.get(): Ansible's hostvars give an undefined value for a host it does not know
    return hostvars[host] if host in hostvars else {}  # noqa: SIM401


def _enabled(hostvars: Mapping[str, Any], host: str, default: bool) -> bool:
    """`host`'s ovms_monitoring_enabled (its inventory or extra vars), else `default` (ovms_common's)."""
    value = _vars(hostvars, host).get("ovms_monitoring_enabled")
    return default if value is None or value == "" else _flag(value)


def _group(groups: Mapping[str, Sequence[str]], kind: str) -> list[str]:
    return [str(h) for h in groups.get(_common().launcher_groups()[kind], [])]


def _plan(
    groups: Mapping[str, Sequence[str]], hostvars: Mapping[str, Any], host: str, *, alone: bool
) -> dict:
    """ovms_tls_plan() of the inventory, as `host` (the calling host) reads it; `alone`: `host` is in
    none of the launcher's groups and is its own server and client. The plan the run computed once
    (roles/ovms_common/tasks/tls_plan.yml sets ovms_common_tls on the play's hosts) is read from the
    calling host's own fact when it is a server or client (its plan is the inventory's); never from
    another host's, which may be outside the play (--limit) and hold anything. Else recomputed:
    that reads every host's variables."""
    if host in (*_group(groups, "servers"), *_group(groups, "clients")):
        computed = _vars(hostvars, host).get("ovms_common_tls")
        if isinstance(computed, Mapping):
            return dict(computed)
    return _common().ovms_tls_plan(groups, hostvars, host if alone else None)


def ovms_monitoring_node_place(
    groups: Mapping[str, Sequence[str]], hostvars: Mapping[str, Any], host: str
) -> str:
    """Where `host`'s one node exporter runs: 'monitoring' (beside Prometheus), 'proxy' (beside the mTLS
    proxy of a server running one), 'gateway' (beside the clients' metrics gateway), or '' (none)."""
    return str(ovms_monitoring_roles(groups, hostvars, host)["node_place"])


def ovms_monitoring_roles(
    groups: Mapping[str, Sequence[str]], hostvars: Mapping[str, Any], host: str
) -> dict[str, Any]:
    """`host`'s part of the monitoring: {monitoring, server, client, proxy, gateway_tls, node_place}.
    `proxy` follows the remote-mode rule as the proxy role reads it (ovms_common_tls); `gateway_tls` (its
    clients dial mTLS) as the client role reads it. A host in none of the launcher's groups (a role run on
    its own) is its own server and client, as ovms_common_tls says."""
    host = str(host)
    monitoring = host in _group(groups, "monitoring")
    server = host in _group(groups, "servers")
    client = host in _group(groups, "clients")
    alone = not any(
        host in hosts for hosts in (groups.get(g, []) for g in _common().launcher_groups().values())
    )
    plan = _plan(groups, hostvars, host, alone=alone)
    server, client = server or alone, client or alone
    proxy = host in plan["servers"]
    if monitoring:
        place = "monitoring"
    elif proxy:
        place = "proxy"
    elif client:
        place = "gateway"
    else:
        place = ""
    return {
        "monitoring": monitoring,
        "server": server,
        "client": client,
        "proxy": proxy,
        "gateway_tls": client and host in plan["clients"],
        "node_place": place,
    }


def ovms_monitoring_listen(name: str) -> str:
    """The loopback address:port a sidecar listens on (LISTEN): stub_status, nginx, node, blackbox."""
    return LISTEN[str(name)]


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _rule_ok(rule: str, text: str) -> bool:
    """Whether `text` passes the named rule `rule` of ovms_common's rule file (the rule engine's)."""
    engine = _common()._rules_engine()
    engine.load_rules(str(RULES_ROLE))
    return not engine.evaluate(engine.definition(rule), text, engine.Context({}, {}))


def _host_name(text: str) -> bool:
    """A DNS name as the rules' `host_name` says (a trailing dot allowed)."""
    return _rule_ok("host_name", text[:-1] if text.endswith(".") else text)


def _checked_address(host: str, variable: str, value: object) -> str:
    """`value` of `host`'s `variable` as written into Prometheus's config: a DNS name or an IP address."""
    text = str(value)
    if not (_is_ip(text) or _host_name(text)):
        raise AnsibleFilterError(
            f"host {host}: {variable} {text!r} is neither a DNS host name (letters, digits and '-' in labels "
            "joined by dots) nor an IP address; the monitoring host cannot write it into Prometheus's config"
        )
    return text


def _checked_port(host: str, variable: str, value: object) -> int:
    text = str(value).strip()
    if isinstance(value, bool) or not re.fullmatch(r"[0-9]{1,5}", text) or not 1 <= int(text) <= 65535:
        raise AnsibleFilterError(f"host {host}: {variable} {value!r} is no port (1 to 65535)")
    return int(text)


def _checked_name(host: str, variable: str, value: object) -> str:
    text = str(value)
    if not _rule_ok("plain_name", text):
        raise AnsibleFilterError(
            f"host {host}: {variable} {text!r} is no container name (letters, digits, '.', '_' or '-', "
            "starting with a letter or digit)"
        )
    return text


def _address(address: str, port: object) -> str:
    """host:port, an IPv6 address (only) in brackets."""
    text = str(address)
    return f"[{text}]:{int(port)}" if ":" in text and _is_ip(text) else f"{text}:{int(port)}"


class _Inventory:
    """The inventory as a monitoring host reads it: each host's values (its inventory or extra vars, else
    the monitoring host's own, which are the roles' defaults unless set for all)."""

    def __init__(
        self,
        groups: Mapping[str, Sequence[str]],
        hostvars: Mapping[str, Any],
        host: str,
        settings: Mapping[str, Any],
    ) -> None:
        self.groups, self.hostvars, self.me = groups, hostvars, str(host)
        self.defaults = dict(settings.get("defaults") or {})
        self.tls_files = dict(settings.get("tls_files") or {})
        # ovms_common's default of ovms_monitoring_enabled: what a host that does not set it runs with
        self.enabled_default = _flag(settings.get("enabled_default", False))
        # the plan of the inventory's own hosts (this host is not made a server or client of its own)
        self.plan = _plan(groups, hostvars, self.me, alone=False)
        self.servers = _group(groups, "servers")
        self.clients = _group(groups, "clients")
        self.monitoring = _group(groups, "monitoring")

    def value(self, host: str, name: str) -> Any:
        value = _vars(self.hostvars, host).get(name)
        return self.defaults[name] if value is None or value == "" else value

    def port(self, host: str, name: str) -> int:
        return _checked_port(host, name, self.value(host, name))

    def name(self, host: str, name: str) -> str:
        return _checked_name(host, name, self.value(host, name))

    def enabled(self, host: str) -> bool:
        """Whether `host` runs its exporters (its own ovms_monitoring_enabled, else ovms_common's default)."""
        return _enabled(self.hostvars, host, self.enabled_default)

    def address(self, host: str) -> str:
        value, variable = _common().advertised_address(host, _vars(self.hostvars, host))
        return _checked_address(host, variable, value)

    def proxy(self, host: str) -> str | None:
        """host:port of `host`'s mTLS proxy, or None (no proxy). This host's own by its container name on
        the private network Prometheus joins (its advertised address may be one only other hosts reach)."""
        if host not in self.plan["servers"]:
            return None
        name = self.name(host, "ovms_tls_container_name") if self.local(host) else self.address(host)
        return _address(name, self.port(host, "ovms_tls_port"))

    def gateway(self, host: str) -> str | None:
        """host:port of `host`'s mTLS metrics gateway, or None (single-system, or disabled); this host's own
        by its container name."""
        if host not in self.clients or host not in self.plan["clients"] or not self.enabled(host):
            return None
        if self.local(host):
            return self.own_gateway(host)
        return _address(self.address(host), self.port(host, "ovms_monitoring_gateway_port"))

    def own_gateway(self, host: str) -> str:
        """host:port of this host's metrics gateway, by its container name on the private network."""
        return _address(
            self.name(host, "ovms_monitoring_gateway_container_name"),
            self.port(host, "ovms_monitoring_gateway_port"),
        )

    def local(self, host: str) -> bool:
        return host == self.me

    def tls(self, host: str) -> dict[str, Any]:
        return {**self.tls_files, "server_name": host}

    def node(self, host: str) -> str | None:
        """Where Prometheus reads `host`'s node exporter: 'local', host:port of its proxy or gateway, or
        None."""
        if not self.enabled(host):
            return None
        if host in self.monitoring:
            return "local" if self.local(host) else None
        if host in self.plan["servers"]:
            return self.proxy(host)
        if host in self.clients:
            return self.gateway(host)
        return None


def _limits(kind: str) -> dict[str, Any]:
    """The limits of a scrape config ('clients': a client container's; 'others')."""
    return {
        "sample_limit": SAMPLE_LIMIT[kind],
        "body_size_limit": BODY_SIZE_LIMIT,
        "label_limit": LABEL_LIMIT,
        "label_name_length_limit": LABEL_NAME_LENGTH_LIMIT,
        "label_value_length_limit": LABEL_VALUE_LENGTH_LIMIT,
    }


def _remote(job: str, host: str, inv: _Inventory, targets: list[str], path: str) -> dict[str, Any]:
    """A scrape config of one remote host over mTLS (its inventory name verified), labelled as `job`."""
    return {
        "job_name": f"{job}/{host}",
        **_limits("others"),
        "metrics_path": path,
        "scheme": "https",
        "tls_config": inv.tls(host),
        "static_configs": [{"targets": targets, "labels": {"host": host}}],
        "relabel_configs": [{"target_label": "job", "replacement": job}],
    }


def _client_relabels(host: str, gateway: str) -> list[dict[str, Any]]:
    """From an http_sd target `<container>:<port>` to the gateway's path of that container."""
    return [
        {"source_labels": ["__address__"], "target_label": "instance"},
        {
            "source_labels": ["__address__"],
            "regex": "(.+):[0-9]+",
            "target_label": "container",
            "replacement": "$1",
        },
        {
            "source_labels": ["container"],
            "target_label": "__metrics_path__",
            "replacement": CLIENT_PATH + "$1",
        },
        {"target_label": "__address__", "replacement": gateway},
        {"target_label": "host", "replacement": host},
    ]


def _client_limits() -> dict[str, Any]:
    """A client host's containers (http_sd): the target's labels win over a container's own (its `job`,
    `instance`, `host`, `container` or `profile` become exported_*: a container cannot pass as another
    host's), at most TARGET_LIMIT containers, each within the clients' limits."""
    return {"honor_labels": False, **_limits("clients"), "target_limit": TARGET_LIMIT}


def _scrape(inv: _Inventory) -> tuple[list[dict[str, Any]], list[str]]:
    configs: list[dict[str, Any]] = []
    unreachable: list[str] = []
    local_servers: list[dict[str, Any]] = []
    for host in inv.servers:
        proxy = inv.proxy(host)
        if proxy is not None:
            configs.append(_remote(JOB["servers"], host, inv, [proxy], "/metrics"))
        elif inv.local(host):
            target = _address(
                inv.name(host, "ovms_server_container_name"), inv.port(host, "ovms_server_rest_port")
            )
            local_servers.append({"targets": [target], "labels": {"host": host}})
        else:
            unreachable.append(
                f"{host} (server): its OVMS runs without the mTLS proxy, on a private network of that host "
                "only; set ovms_tls_enabled: true for it (or make this host its monitoring host)"
            )
    if local_servers:
        configs.insert(
            0,
            {
                "job_name": JOB["servers"],
                **_limits("others"),
                "metrics_path": "/metrics",
                "static_configs": local_servers,
            },
        )
    for host in inv.clients:
        if not inv.enabled(host):
            continue
        gateway = inv.gateway(host)
        if gateway is not None:
            configs.append(
                {
                    "job_name": f"{JOB['clients']}/{host}",
                    **_client_limits(),
                    "scheme": "https",
                    "tls_config": inv.tls(host),
                    "http_sd_configs": [{"url": f"https://{gateway}{SD_PATH}", "tls_config": inv.tls(host)}],
                    "relabel_configs": [
                        *_client_relabels(host, gateway),
                        {"target_label": "job", "replacement": JOB["clients"]},
                    ],
                }
            )
        elif inv.local(host):
            gateway = inv.own_gateway(host)
            configs.append(
                {
                    "job_name": JOB["clients"],
                    **_client_limits(),
                    "http_sd_configs": [{"url": f"http://{gateway}{SD_PATH}"}],
                    "relabel_configs": _client_relabels(host, gateway),
                }
            )
        else:
            unreachable.append(
                f"{host} (client): its clients dial their server without mTLS, so its metrics gateway is not "
                "published; set ovms_tls_enabled: true for it (or make this host its monitoring host)"
            )
    hosts = list(dict.fromkeys([*inv.servers, *inv.clients, *inv.monitoring]))
    for host in hosts:
        if not inv.enabled(host):
            continue
        exporters = [t for t in (inv.proxy(host), inv.gateway(host)) if t is not None]
        if exporters:
            configs.append(_remote(JOB["nginx"], host, inv, exporters, NGINX_PATH))
    for host in hosts:
        node = inv.node(host)
        if node == "local":
            configs.append(
                {
                    "job_name": JOB["node"],
                    **_limits("others"),
                    "static_configs": [{"targets": [LISTEN["node"]], "labels": {"host": host}}],
                }
            )
        elif node is not None:
            configs.append(_remote(JOB["node"], host, inv, [node], NODE_PATH))
    probes = [
        {"targets": [target], "labels": {"host": host}}
        for host in hosts
        for target in (inv.proxy(host), inv.gateway(host))
        if target is not None
    ]
    if probes:
        configs.append(
            {
                "job_name": JOB["tls"],
                **_limits("others"),
                "metrics_path": "/probe",
                "params": {"module": [PROBE_MODULE]},
                "static_configs": probes,
                "relabel_configs": [
                    {"source_labels": ["__address__"], "target_label": "__param_target"},
                    {"source_labels": ["__param_target"], "target_label": "instance"},
                    {"target_label": "__address__", "replacement": LISTEN["blackbox"]},
                ],
            }
        )
    return configs, unreachable


def ovms_monitoring_scrape_configs(
    groups: Mapping[str, Sequence[str]],
    hostvars: Mapping[str, Any],
    host: str,
    settings: Mapping[str, Any],
) -> list[dict[str, Any]]:
    """Prometheus's scrape configs on monitoring host `host` (module docstring). `settings`:
    {tls_files: {ca_file, cert_file, key_file} as Prometheus's container sees them, defaults: {name:
    value} of ovms_tls_port, ovms_monitoring_gateway_port, ovms_server_container_name,
    ovms_server_rest_port, ovms_tls_container_name, ovms_monitoring_gateway_container_name for hosts
    that do not set them, enabled_default: ovms_common's ovms_monitoring_enabled}. This host's own
    servers and gateway are dialled by container name on its private network (over mTLS in remote
    mode), other hosts' at their advertised address. Other hosts' values are checked (module
    docstring): AnsibleFilterError names the host and the variable."""
    return _scrape(_Inventory(groups, hostvars, host, settings))[0]


def ovms_monitoring_unreachable(
    groups: Mapping[str, Sequence[str]],
    hostvars: Mapping[str, Any],
    host: str,
    settings: Mapping[str, Any],
) -> list[str]:
    """'<host> (<role>): why' of each server or client host monitoring host `host` cannot scrape."""
    return _scrape(_Inventory(groups, hostvars, host, settings))[1]


def ovms_monitoring_uses_tls(scrape_configs: Sequence[Mapping[str, Any]]) -> bool:
    """Whether Prometheus dials a host over mTLS (then it needs its client certificate)."""
    return any("tls_config" in config or config.get("job_name") == JOB["tls"] for config in scrape_configs)


def _peer_name(name: object, what: str) -> str:
    text = str(name)
    if not _host_name(text) or text.endswith("."):
        raise AnsibleFilterError(
            f"{what} {text!r} is no DNS host name (letters, digits and '-' in labels joined by dots): it "
            "cannot be a certificate name the nginx map of the metrics readers matches"
        )
    return text


def ovms_monitoring_metrics_peers(
    groups: Mapping[str, Sequence[str]],
    hostvars: Mapping[str, Any],
    controller: str,
    enabled_default: object = False,
) -> list[dict[str, str]]:
    """The client certificates that may read the metrics of the mTLS proxy and of the clients' metrics
    gateway, each {name (its CN), dn (a regular expression of nginx's $ssl_client_s_dn, RFC 2253, whose
    first RDN is the CN: the PKI's subject is O=..., CN=<name>), peer}: the controller's own (`launcher
    status`; PEER_READER: it also asks the models over gRPC) and each monitoring host's with
    ovms_monitoring_enabled (its own, else `enabled_default`, ovms_common's): PEER_READER when it is a
    client host too (its certificate is its clients' one), else PEER_MONITOR (the metrics only; the proxy
    refuses its gRPC calls). Names are checked as DNS names (AnsibleFilterError otherwise). The group is
    non-capturing: a map's capture would replace the $1 of the location that reads the map."""
    peers: dict[str, str] = {_peer_name(controller, "the controller's certificate name"): PEER_READER}
    clients = set(_group(groups, "clients"))
    for host in _group(groups, "monitoring"):
        if not _enabled(hostvars, host, _flag(enabled_default)) or host in peers:
            continue
        peers[_peer_name(host, "monitoring host")] = PEER_READER if host in clients else PEER_MONITOR
    return [
        {"name": name, "dn": "^CN=" + name.replace(".", "\\.") + "(?:,|$)", "peer": peer}
        for name, peer in peers.items()
    ]


class FilterModule:
    def filters(self) -> dict:
        return {
            "ovms_monitoring_roles": ovms_monitoring_roles,
            "ovms_monitoring_node_place": ovms_monitoring_node_place,
            "ovms_monitoring_listen": ovms_monitoring_listen,
            "ovms_monitoring_scrape_configs": ovms_monitoring_scrape_configs,
            "ovms_monitoring_unreachable": ovms_monitoring_unreachable,
            "ovms_monitoring_uses_tls": ovms_monitoring_uses_tls,
            "ovms_monitoring_metrics_peers": ovms_monitoring_metrics_peers,
        }
