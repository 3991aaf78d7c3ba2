"""Sites in the validation (launcher/sites.py): warnings about a site's servers and clients, and the
per-site summary of the report.

Warnings (shown, never blocking: a deploy does what the inventory says):
- a site with no server (its clients then use a server of another site), once, named with the
  servers its clients use as the validation assigned them;
- a server of a site that no client uses;
- a client of a site with servers whose ovms_client_server is a server of another site, or of none.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from launcher.inventory import SERVERS_GROUP, Inventory
from launcher.sites import SITE_VAR, Site, site_error, sites
from launcher.validate.origins import EXTRA_VARS, VarOrigins
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


def check_site_values(
    inventory: Inventory, origins: VarOrigins, extravars: Mapping[str, Any]
) -> list[Problem]:
    """Problems of the hosts' `ovms_site` itself: set in --extra-vars (the launcher reads the sites
    from the inventory, Ansible would take the extra var: they would disagree), or a template that
    does not render (the host then has no site)."""
    if SITE_VAR in extravars:
        return [
            Problem(
                EXTRA_VARS,
                SITE_VAR,
                "a host's site cannot be an extra var: the launcher plans sites and batches from the "
                "inventory, Ansible would use the extra var for every host",
                f"remove {SITE_VAR} from --extra-vars and set it in the inventory, per site group",
            )
        ]
    problems: list[Problem] = []
    for host in inventory.members():
        error = site_error(host)
        if error:
            problems.append(
                Problem(
                    origins.find(SITE_VAR, host.name, host.groups),
                    SITE_VAR,
                    f"the template {host.vars.get(SITE_VAR)!r} does not render ({error}); "
                    "the host has no site",
                    f"define the variables it uses for the host, or write the site as plain text "
                    f"({SITE_VAR}: store-a)",
                    (host.name,),
                )
            )
    return problems


def check_sites(
    inventory: Inventory,
    origins: VarOrigins,
    assigned: Mapping[str, str],
    deferred: Iterable[str] = (),
) -> tuple[dict[str, Site], list[Problem]]:
    """The inventory's sites and the warnings about them. `assigned`: client -> its server (explicit
    or the default rule, as resolve_servers() computed it); `deferred`: clients whose
    ovms_client_server is left to Ansible. One warning per fact: a site with no server is warned
    once, naming the servers its clients use; a client of a site with servers, when it uses another
    site's server (ovms_client_server as merged with the extra vars: `assigned`)."""
    found = sites(inventory)
    if not found:
        return found, []
    warnings: list[Problem] = []
    site_by_host = {name: site.name for site in found.values() for name in site.hosts}

    def where(key: str, host: str) -> str:
        return origins.find(key, host, inventory.hosts[host].groups)

    def described(server: str) -> str:
        theirs = site_by_host.get(server, "")
        return f"{server} (site {theirs!r})" if theirs else f"{server} (no site)"

    for site in found.values():
        if site.servers:
            continue
        serving = list(dict.fromkeys(assigned[c] for c in site.clients if c in assigned))
        if serving:
            elsewhere = f"its clients use {', '.join(map(described, serving))}"
        elif site.clients:
            elsewhere = "its clients' server is left to Ansible"
        else:
            elsewhere = "nothing in it is served"
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
    for client in inventory.clients:
        own = site_by_host.get(client.name, "")
        server = assigned.get(client.name)
        if not own or server is None or not found[own].servers:
            continue  # a site with no server: warned once above
        theirs = site_by_host.get(server, "")
        if theirs == own:
            continue
        site = found[own]
        other = f"site {theirs!r}" if theirs else "no site"
        warnings.append(
            Problem(
                where("ovms_client_server", client.name),
                "ovms_client_server",
                f"client of site {own!r} uses {server} of {other}",
                f"use a server of its own site ({', '.join(site.servers)}): remove ovms_client_server "
                f"(the default is {site.servers[0]}) or set it to one of them",
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
