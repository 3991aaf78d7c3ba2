"""Monitoring before the run (role ovms_monitoring, docs/monitoring.md): who runs Prometheus, which client
hosts serve their containers' metrics over mTLS, the certificates that takes, and what no Prometheus
could scrape.

- A host of the monitoring group whose `ovms_monitoring_enabled` is true runs Prometheus; it scrapes
  with a CLIENT certificate named after it (a documented use of the client kind).
- A client host with monitoring enabled runs the clients' metrics gateway; in remote mode (its clients
  dial over mTLS: `clients` of the roles' `tls_plan`) the gateway serves mTLS with a SERVER
  certificate of that host (SANs as a server's). A host that is also a server has one already.
- A single-system (non-TLS) server or client host serves its metrics on its private network only: only
  Prometheus on that same host reaches them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from launcher.errors import LauncherError
from launcher.inventory import CLIENTS_GROUP, MONITORING_GROUP, MONITORING_VAR, SERVERS_GROUP, Inventory
from launcher.inventory import monitoring_enabled as host_monitoring_enabled
from launcher.pki.layout import Kind
from launcher.validate.origins import VarOrigins
from launcher.validate.problems import Problem
from launcher.validate.tls import TlsPlan


@dataclass(frozen=True)
class MonitoringPlan:
    """Hosts with monitoring enabled; the monitoring hosts among them (Prometheus); the client hosts
    among them whose metrics gateway serves mTLS; whether any scrape crosses hosts over mTLS."""

    enabled: frozenset[str]
    monitors: tuple[str, ...]
    gateways: tuple[str, ...]
    mtls: bool

    def certificate_users(self) -> list[tuple[str, Kind]]:
        """Who receives which certificate for the monitoring: each monitoring host its client
        certificate when it scrapes over mTLS, each mTLS gateway its host's server certificate."""
        users = [(name, Kind.CLIENT) for name in self.monitors] if self.mtls else []
        return users + [(name, Kind.SERVER) for name in self.gateways]


def enabled_hosts(inventory: Inventory, extravars: Mapping[str, Any] | None = None) -> frozenset[str]:
    """The hosts whose ovms_monitoring_enabled is true (the extra vars over the inventory over the
    roles' default); a value that is no boolean counts as false (the variables' check reports it)."""
    enabled: set[str] = set()
    for host in inventory.hosts.values():
        try:
            if host_monitoring_enabled(host, extravars):
                enabled.add(host.name)
        except LauncherError:
            continue
    return frozenset(enabled)


def monitoring_plan(
    inventory: Inventory, plan: TlsPlan, extravars: Mapping[str, Any] | None = None
) -> MonitoringPlan:
    enabled = enabled_hosts(inventory, extravars)
    monitors = tuple(h.name for h in inventory.monitoring if h.name in enabled)
    gateways = tuple(c.name for c in inventory.clients if c.name in enabled and c.name in plan.clients)
    mtls = bool(monitors) and bool(plan.servers or gateways)
    return MonitoringPlan(enabled, monitors, gateways, mtls)


def _role_hosts(inventory: Inventory) -> list[tuple[str, tuple[str, ...], str]]:
    """(host, groups, its roles as words) of every server and client host."""
    found = []
    for host in inventory.hosts.values():
        roles = [w for g, w in ((SERVERS_GROUP, "server"), (CLIENTS_GROUP, "client")) if g in host.groups]
        if roles:
            found.append((host.name, host.groups, " and ".join(roles)))
    return found


def _single_system(name: str, groups: Iterable[str], plan: TlsPlan, mon: MonitoringPlan) -> list[str]:
    """What of a host is served on its private network only: a server without the mTLS proxy, a client
    host with monitoring enabled whose clients (and so its metrics gateway) do not use mTLS."""
    parts = []
    if SERVERS_GROUP in groups and name not in plan.servers:
        parts.append("its OVMS server's metrics")
    if CLIENTS_GROUP in groups and name in mon.enabled and name not in plan.clients:
        parts.append("its clients' metrics")
    return parts


def check_monitoring(
    inventory: Inventory, origins: VarOrigins, plan: TlsPlan, mon: MonitoringPlan
) -> tuple[list[Problem], list[Problem]]:
    """Problems and warnings of the monitoring, when a monitoring host has it enabled: a server or
    client host on another host that serves its metrics on its private network only (no Prometheus
    elsewhere reaches it) is a problem; a server or client host with monitoring disabled, whose
    exporters and gateway would be missing (its targets down), a warning."""
    problems: list[Problem] = []
    warnings: list[Problem] = []
    if not mon.monitors:
        if mon.enabled & {name for name, _, _ in _role_hosts(inventory)}:
            warnings.append(
                Problem(
                    origins.find(MONITORING_VAR),
                    MONITORING_VAR,
                    f"monitoring is enabled, but no host of group {MONITORING_GROUP} has it enabled: "
                    "nothing collects the metrics",
                    f"add a host under `{MONITORING_GROUP}:` with {MONITORING_VAR}: true "
                    "(see inventories/localhost/hosts.yml)",
                    tuple(sorted(mon.enabled)),
                )
            )
        return problems, warnings
    for name, groups, roles in _role_hosts(inventory):
        if name not in mon.enabled:
            warnings.append(
                Problem(
                    origins.find(MONITORING_VAR, name, groups),
                    MONITORING_VAR,
                    f"{name} ({roles} host) has monitoring disabled while {', '.join(mon.monitors)} "
                    "monitors the deployment: its exporters are not deployed and its targets will be down",
                    f"set {MONITORING_VAR}: true for the whole inventory (all: vars, or -e)",
                    (name,),
                )
            )
        private = _single_system(name, groups, plan, mon)
        others = [m for m in mon.monitors if m != name]
        if private and others:
            problems.append(
                Problem(
                    origins.find("ovms_tls_enabled", name, groups),
                    "ovms_tls_enabled",
                    f"{name} runs single-system (no mTLS): {' and '.join(private)} are on its private "
                    f"Docker network only, which Prometheus on {', '.join(others)} cannot reach",
                    f"set ovms_tls_enabled: true on {name} (remote mode: scraped over mTLS), or monitor "
                    f"it from {name} itself (only {name} in group {MONITORING_GROUP})",
                    (name, *others),
                )
            )
    return problems, warnings
