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
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

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
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on", "y", "t")
    return bool(value)


def _vars(hostvars: Mapping[str, Any], host: str) -> Mapping[str, Any]:
    # not hostvars.get(): Ansible's hostvars give an undefined value for a host it does not know
    return hostvars[host] if host in hostvars else {}  # noqa: SIM401


def _group(groups: Mapping[str, Sequence[str]], kind: str) -> list[str]:
    return [str(h) for h in groups.get(_common().launcher_groups()[kind], [])]


def _plan(groups: Mapping[str, Sequence[str]], hostvars: Mapping[str, Any], host: str | None) -> dict:
    return _common().ovms_tls_plan(groups, hostvars, host)


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
    plan = _plan(groups, hostvars, host if alone else None)
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


def _address(address: str, port: object) -> str:
    """host:port, an IPv6 address in brackets."""
    text = str(address)
    return f"[{text}]:{int(port)}" if ":" in text else f"{text}:{int(port)}"


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
        # the plan of the inventory's own hosts (this host is not made a server or client of its own)
        self.plan = _plan(groups, hostvars, None)
        self.servers = _group(groups, "servers")
        self.clients = _group(groups, "clients")
        self.monitoring = _group(groups, "monitoring")

    def value(self, host: str, name: str) -> Any:
        value = _vars(self.hostvars, host).get(name)
        return self.defaults[name] if value is None or value == "" else value

    def enabled(self, host: str) -> bool:
        """Whether `host` runs its exporters (its own ovms_monitoring_enabled, else this host's)."""
        value = _vars(self.hostvars, host).get("ovms_monitoring_enabled")
        return True if value is None or value == "" else _flag(value)

    def address(self, host: str) -> str:
        return _common().advertised_address(host, _vars(self.hostvars, host))[0]

    def proxy(self, host: str) -> str | None:
        """host:port of `host`'s mTLS proxy, or None (no proxy). This host's own by its container name on
        the private network Prometheus joins (its advertised address may be one only other hosts reach)."""
        if host not in self.plan["servers"]:
            return None
        name = self.value(host, "ovms_tls_container_name") if self.local(host) else self.address(host)
        return _address(name, self.value(host, "ovms_tls_port"))

    def gateway(self, host: str) -> str | None:
        """host:port of `host`'s mTLS metrics gateway, or None (single-system, or disabled); this host's own
        by its container name."""
        if host not in self.clients or host not in self.plan["clients"] or not self.enabled(host):
            return None
        if self.local(host):
            return _address(
                self.value(host, "ovms_monitoring_gateway_container_name"),
                self.value(host, "ovms_monitoring_gateway_port"),
            )
        return _address(self.address(host), self.value(host, "ovms_monitoring_gateway_port"))

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


def _remote(job: str, host: str, inv: _Inventory, targets: list[str], path: str) -> dict[str, Any]:
    """A scrape config of one remote host over mTLS (its inventory name verified), labelled as `job`."""
    return {
        "job_name": f"{job}/{host}",
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
                inv.value(host, "ovms_server_container_name"), inv.value(host, "ovms_server_rest_port")
            )
            local_servers.append({"targets": [target], "labels": {"host": host}})
        else:
            unreachable.append(
                f"{host} (server): its OVMS runs without the mTLS proxy, on a private network of that host "
                "only; set ovms_tls_enabled: true for it (or make this host its monitoring host)"
            )
    if local_servers:
        configs.insert(
            0, {"job_name": JOB["servers"], "metrics_path": "/metrics", "static_configs": local_servers}
        )
    for host in inv.clients:
        if not inv.enabled(host):
            continue
        gateway = inv.gateway(host)
        if gateway is not None:
            configs.append(
                {
                    "job_name": f"{JOB['clients']}/{host}",
                    "honor_labels": True,
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
            gateway = _address(
                inv.value(host, "ovms_monitoring_gateway_container_name"),
                inv.value(host, "ovms_monitoring_gateway_port"),
            )
            configs.append(
                {
                    "job_name": JOB["clients"],
                    "honor_labels": True,
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
    that do not set them}. This host's own servers and gateway are dialled by container name on its
    private network (over mTLS in remote mode), other hosts' at their advertised address."""
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


class FilterModule:
    def filters(self) -> dict:
        return {
            "ovms_monitoring_roles": ovms_monitoring_roles,
            "ovms_monitoring_node_place": ovms_monitoring_node_place,
            "ovms_monitoring_listen": ovms_monitoring_listen,
            "ovms_monitoring_scrape_configs": ovms_monitoring_scrape_configs,
            "ovms_monitoring_unreachable": ovms_monitoring_unreachable,
            "ovms_monitoring_uses_tls": ovms_monitoring_uses_tls,
        }
