"""What certificates an inventory (or the command line) asks for."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from launcher.errors import LauncherError
from launcher.inventory import CLIENTS_GROUP, SERVERS_GROUP, Inventory, group_list
from launcher.pki.authority import LeafSpec
from launcher.pki.layout import Kind, controller_client, kind_folder
from launcher.pki.names import SanName, parse_san, typed_san, unique_sans, validate_host_name


def _host_name(name: str, *, file: str | None, key: str) -> str:
    try:
        return validate_host_name(name)
    except ValueError as exc:
        raise LauncherError(str(exc), file=file, key=key, fix="rename the host") from None


def _typed(value: str, *, file: str | None, key: str) -> SanName:
    try:
        return typed_san(value)
    except ValueError as exc:
        raise LauncherError(f"{exc} (neither an IP address nor a DNS name)", file=file, key=key) from None


def _parsed(values: Iterable[str], *, file: str | None, key: str) -> list[SanName]:
    names = []
    for value in values:
        try:
            names.append(parse_san(value))
        except ValueError as exc:
            raise LauncherError(
                str(exc), file=file, key=key, fix='write each as "DNS:name" or "IP:address"'
            ) from None
    return names


def server_spec(
    name: str, addresses: Sequence[str], extra_sans: Iterable[str], *, file: str | None = None
) -> LeafSpec:
    """SANs: the host name, its addresses (each typed DNS or IP), then the extra `DNS:`/`IP:` entries."""
    name = _host_name(name, file=file, key=name)
    sans = [_typed(name, file=file, key=name)]
    sans += [_typed(a, file=file, key=f"{name}: ansible_host/ovms_advertise_address") for a in addresses]
    sans += _parsed(extra_sans, file=file, key=f"{name}: ovms_tls_extra_sans")
    return LeafSpec(Kind.SERVER, name, unique_sans(sans))


def client_spec(name: str, *, file: str | None = None) -> LeafSpec:
    """CN and a single SAN: the host name (a client is identified, not dialled)."""
    name = _host_name(name, file=file, key=name)
    return LeafSpec(Kind.CLIENT, name, (_typed(name, file=file, key=name),))


def controller_name_clash(inventory: Inventory) -> LauncherError | None:
    """The error of an inventory with a host named like the controller's own client certificate
    (`controller_client()`, the roles' name: `launcher status` reads remote servers' model states
    through their mTLS proxy with it, module ovms_probe; such a host would receive its key), or None."""
    controller = controller_client()
    # the engine's rule (not_controller): DNS names do not tell `Launcher` from `launcher`
    clash = next((h for h in inventory.hosts if h.lower() == controller.lower()), None)
    if clash is None:
        return None
    return LauncherError(
        f'a host is named "{clash}": it would receive the controller\'s own client '
        f"certificate and key ({kind_folder(Kind.CLIENT)}/{controller}/ of the certificates folder, which "
        "`launcher status` uses)",
        file=inventory.source_label,
        key=clash,
        fix="rename the host in the inventory (keep its address in ansible_host)",
    )


def specs_from_inventory(inventory: Inventory, extravars: Mapping[str, Any] | None = None) -> list[LeafSpec]:
    """A server certificate per server, a client certificate per client, the controller's own client
    certificate (`controller_client()`) whenever there is a server to query, and the monitoring's
    (launcher/validate/monitoring.py; `extravars`: `-e` over the inventory): a client certificate per
    monitoring host with monitoring enabled, a server certificate per client host whose metrics gateway
    serves mTLS (SANs as a server's). A host already given a certificate of that kind keeps that one."""
    label = inventory.source_label
    if not inventory.servers and not inventory.clients:
        raise LauncherError(
            f"the inventory has no hosts in the groups {group_list(['servers', 'clients'])}",
            file=label,
            fix=f"add the hosts under `{SERVERS_GROUP}:` / `{CLIENTS_GROUP}:` "
            "(see inventories/example-remote/)",
        )
    clash = controller_name_clash(inventory)
    if clash is not None:
        raise clash
    monitors, gateways = _monitoring_hosts(inventory, extravars)
    servers = dict.fromkeys([*(s.name for s in inventory.servers), *gateways])
    clients = dict.fromkeys([*(c.name for c in inventory.clients), *monitors])
    specs = []
    for name in servers:
        host = inventory.host(name)
        specs.append(
            server_spec(name, [host.ansible_host, host.advertise_address], host.extra_sans, file=label)
        )
    specs += [client_spec(name, file=label) for name in clients]
    if inventory.servers:
        specs.append(client_spec(controller_client(), file=label))
    return specs


def _monitoring_hosts(
    inventory: Inventory, extravars: Mapping[str, Any] | None
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The monitoring hosts that run Prometheus, and the client hosts whose metrics gateway serves mTLS."""
    # the validate package imports launcher.pki (through launcher.pki.inspection)
    from launcher.validate.monitoring import enabled_hosts, monitoring_plan
    from launcher.validate.tls import remote_plan

    if not enabled_hosts(inventory, extravars):
        return (), ()  # the run's variables need not be checked
    _, plan = remote_plan(inventory, extravars or {})
    mon = monitoring_plan(inventory, plan, extravars)
    return mon.monitors, mon.gateways


def specs_from_options(servers: Iterable[str], sans: Iterable[str], clients: Iterable[str]) -> list[LeafSpec]:
    sans = list(sans)
    specs = [server_spec(name, [], sans) for name in servers]
    if sans and not specs:
        raise LauncherError("--san needs at least one --server", key="--san", fix="add --server NAME")
    specs += [client_spec(name) for name in clients]
    return specs
