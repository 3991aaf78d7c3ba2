"""Sites in the validation (launcher/sites.py): warnings about a site's servers and clients, and the
per-site summary of the report.

Warnings (shown, never blocking: a deploy does what the inventory says):
- a site with no server (its clients then use the inventory's first server, in another site);
- a server of a site that no client uses;
- a client with a site and no server in it (named with the server it falls back to);
- a client whose ovms_client_server is a server of another site, or of none.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from launcher.inventory import SERVERS_GROUP, Inventory
from launcher.sites import SITE_VAR, Site, sites
from launcher.validate.origins import VarOrigins
from launcher.validate.problems import Problem


@dataclass(frozen=True)
class SiteSummary:
    """One line of the report: a site's servers and clients, the camera streams of its clients'
    profiles, and the messages of the problems and warnings naming one of its hosts."""

    name: str
    servers: tuple[str, ...]
    clients: tuple[str, ...]
    streams: int
    problems: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "servers": list(self.servers),
            "clients": list(self.clients),
            "streams": self.streams,
            "problems": list(self.problems),
        }

    def describe(self) -> str:
        servers = ", ".join(self.servers) or "none"
        count = len(self.problems)
        return (
            f"{self.name}: server {servers}; {len(self.clients)} client(s); {self.streams} stream(s); "
            f"{count} problem(s)"
        )


def check_sites(
    inventory: Inventory,
    origins: VarOrigins,
    assigned: Mapping[str, str],
    deferred: Iterable[str] = (),
) -> tuple[dict[str, Site], list[Problem]]:
    """The inventory's sites and the warnings about them. `assigned`: client -> its server (explicit
    or the default rule); `deferred`: clients whose ovms_client_server is left to Ansible."""
    found = sites(inventory)
    if not found:
        return found, []
    warnings: list[Problem] = []
    site_by_host = {name: site.name for site in found.values() for name in site.hosts}
    first_server = inventory.servers[0].name if inventory.servers else ""

    def where(key: str, host: str) -> str:
        return origins.find(key, host, inventory.hosts[host].groups)

    for site in found.values():
        if not site.servers:
            elsewhere = (
                f"its clients use {first_server}, the inventory's first server"
                + (f" (site {site_by_host[first_server]!r})" if site_by_host.get(first_server) else "")
                if site.clients and first_server
                else "nothing in it is served"
            )
            warnings.append(
                Problem(
                    where(SITE_VAR, site.hosts[0]),
                    SITE_VAR,
                    f"site {site.name!r} has no server: {elsewhere}",
                    f"add a host of {SERVERS_GROUP} with {SITE_VAR}: {site.name} (the store's server), "
                    f"or move these hosts to a site that has one",
                    site.hosts,
                )
            )
    explicit = {
        client.name
        for client in inventory.clients
        if client.vars.get("ovms_client_server") not in (None, "") and client.name in assigned
    }
    for client in inventory.clients:
        own = site_by_host.get(client.name, "")
        server = assigned.get(client.name)
        if not own or server is None:
            continue
        site = found[own]
        theirs = site_by_host.get(server, "")
        if not site.servers and client.name not in explicit:
            warnings.append(
                Problem(
                    where(SITE_VAR, client.name),
                    SITE_VAR,
                    f"client of site {own!r}, which has no server: it uses {server}"
                    + (f" of site {theirs!r}" if theirs else " (no site)"),
                    f"add a server to site {own}, or set ovms_client_server to the server it should use",
                    (client.name,),
                )
            )
            continue
        if theirs != own:
            other = f"site {theirs!r}" if theirs else "no site"
            fix = (
                f"use a server of its own site ({', '.join(site.servers)}): remove ovms_client_server "
                f"(the default is {site.servers[0]}) or set it to one of them"
                if site.servers
                else f"add a server to site {own}"
            )
            warnings.append(
                Problem(
                    where("ovms_client_server", client.name),
                    "ovms_client_server",
                    f"client of site {own!r} uses {server} of {other}",
                    fix,
                    (client.name,),
                )
            )
    if not set(deferred):
        used = set(assigned.values())
        for site in found.values():
            for server in site.servers:
                if server in used:
                    continue
                warnings.append(
                    Problem(
                        where(SITE_VAR, server),
                        SITE_VAR,
                        f"server of site {site.name!r} that no client uses"
                        + ("" if site.clients else " (the site has no client)"),
                        f"add the store's clients to site {site.name}, "
                        "or point their ovms_client_server at it",
                        (server,),
                    )
                )
    return found, warnings


def summarise(
    found: Mapping[str, Site],
    profiles: Mapping[str, Sequence[Any]],
    findings: Iterable[Problem],
) -> dict[str, SiteSummary]:
    """SiteSummary of each site: streams = sum over its clients' profiles of streams x instances
    (profiles fetched by the hosts themselves count 0: unknown before the run)."""
    touching: dict[str, list[str]] = {name: [] for name in found}
    site_by_host = {host: site.name for site in found.values() for host in site.hosts}
    for finding in findings:
        for name in dict.fromkeys(site_by_host[h] for h in finding.hosts if h in site_by_host):
            touching[name].append(finding.message)
    return {
        name: SiteSummary(
            name,
            site.servers,
            site.clients,
            sum(p.streams * p.instances for client in site.clients for p in profiles.get(client, ())),
            tuple(dict.fromkeys(touching[name])),
        )
        for name, site in found.items()
    }
