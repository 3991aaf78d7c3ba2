"""Rules of remote mode: models stay on the servers, and clients can reach the address they dial."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Mapping

from launcher.inventory import SERVERS_GROUP, Inventory, OvmsServer
from launcher.validate.origins import VarOrigins
from launcher.validate.problems import Problem
from launcher.validate.variables import HostVars

# Variables that place or describe models: they belong to server hosts only.
MODEL_VARIABLES = (
    "ovms_server_models",
    "ovms_models_dir",
    "ovms_models_list",
    "ovms_models_cache_dir",
    "ovms_models_allow_network_fs",
)


def _loopback(address: str) -> bool:
    if address.lower() in {"localhost", "localhost.localdomain", "ip6-localhost"}:
        return True
    try:
        return ipaddress.ip_address(address.strip("[]")).is_loopback
    except ValueError:
        return False


def check_models_stay_on_servers(inventory: Inventory, origins: VarOrigins) -> list[Problem]:
    """A client-only host that sets a models variable of its own (not shared with a server) is refused.

    Group-wide settings (e.g. ovms_server_models in group_vars/all) reach clients too and are fine:
    a client host never runs the models or server roles. A value that only a client has means
    someone tries to give a client a models path or source.
    """
    problems: list[Problem] = []
    servers = inventory.servers
    for host in inventory.clients:
        if SERVERS_GROUP in host.groups:
            continue
        for key in MODEL_VARIABLES:
            if key not in host.vars:
                continue
            value = host.vars[key]
            if any(s.vars.get(key) == value for s in servers):
                continue
            problems.append(
                Problem(
                    origins.find(key, host.name, host.groups),
                    key,
                    f"{host.name} is a client host: models stay on the servers, a client gets no models "
                    "path or source",
                    f"remove {key} from {host.name}; set it on the server host(s) ({SERVERS_GROUP}) instead",
                    (host.name,),
                )
            )
    return problems


def check_reachable_servers(
    inventory: Inventory,
    hosts: Mapping[str, HostVars],
    origins: VarOrigins,
    assigned: Mapping[str, str],
    machine: Callable[[HostVars], str],
) -> list[Problem]:
    """A client on another machine cannot dial a server that advertises a loopback address."""
    problems: list[Problem] = []
    servers: dict[str, OvmsServer] = {s.name: s for s in inventory.servers}
    reported: set[str] = set()
    for client, server_name in assigned.items():
        server = servers.get(server_name)
        if server is None or server.name in reported or client not in hosts:
            continue
        if machine(hosts[client]) == machine(hosts[server.name]):
            continue
        if _loopback(server.advertise_address):
            reported.add(server.name)
            key = "ovms_advertise_address" if "ovms_advertise_address" in server.vars else "ansible_host"
            problems.append(
                Problem(
                    origins.find(key, server.name, server.groups),
                    key,
                    f"{server.name} advertises {server.advertise_address!r}, but its client {client} is "
                    "another machine and would dial itself",
                    f"set ovms_advertise_address of {server.name} to an address its clients reach "
                    "(then run `launcher certs generate -i INV` for the new SAN)",
                    (server.name, client),
                )
            )
    return problems
