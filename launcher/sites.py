"""Sites of an inventory: a store, its server and its cameras' clients.

A site is the host variable `ovms_site` (roles/ovms_common: a string, "" or unset for none), normally
set once in the vars of an inventory group holding the store's hosts (group `store_a` with
`vars: {ovms_site: store-a}`; such groups may be children of a group `ovms_sites`, which means nothing
to the launcher). A client with a site uses the first server of its own site (the rule
`default_server` of plugins/filter/ovms_common.py); `launcher validate` summarises the inventory per
site; `launcher deploy` rolls out by batches of sites.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from launcher.inventory import (
    CAMERAS_GROUP,
    CLIENTS_GROUP,
    MONITORING_GROUP,
    SERVERS_GROUP,
    Inventory,
    InventoryHost,
)

SITE_VAR = "ovms_site"


def _templated(value: str, variables: Mapping[str, Any]) -> Any:
    """A Jinja value of the site (`"{{ store }}"`) as Ansible renders it from the host's variables."""
    from ansible.parsing.dataloader import DataLoader
    from ansible.template import Templar, trust_as_template

    # the inventory's own text: trusted as a template, as ansible-core trusts what it reads there
    return Templar(loader=DataLoader(), variables=dict(variables)).template(trust_as_template(value))


# host id -> (the host, its site, the templating error or ""): site_of() is called several times
# per host and templating builds a Templar and a DataLoader; the host is kept so its id stays its own
_RESOLVED: dict[int, tuple[InventoryHost, str, str]] = {}


def _resolve(host: InventoryHost) -> tuple[str, str]:
    """The host's site and, when its `ovms_site` template does not render, Ansible's error ("" else)."""
    cached = _RESOLVED.get(id(host))
    if cached is not None and cached[0] is host:
        return cached[1], cached[2]
    site, error = "", ""
    value = host.vars.get(SITE_VAR)
    if isinstance(value, str) and ("{{" in value or "{%" in value):
        from ansible.errors import AnsibleError

        from launcher.inventory import plain

        try:
            rendered = plain(_templated(value, host.vars))
        except AnsibleError as exc:
            error = str(getattr(exc, "message", None) or exc).splitlines()[0]
        else:
            site = "" if rendered is None else str(rendered)
    elif value is not None:
        site = str(value)
    _RESOLVED[id(host)] = (host, site, error)
    return site, error


def site_of(host: InventoryHost) -> str:
    """The host's site: its `ovms_site` (templated like the host's other variables when it is a
    template), "" when unset, null or empty, or when the template does not render (site_error())."""
    return _resolve(host)[0]


def site_error(host: InventoryHost) -> str:
    """Why the host's `ovms_site` template does not render (Ansible's message), "" when it does."""
    return _resolve(host)[1]


@dataclass(frozen=True)
class Site:
    """One site's hosts by the launcher's groups (inventory order; a host may be in several)."""

    name: str
    servers: tuple[str, ...] = ()
    clients: tuple[str, ...] = ()
    cameras: tuple[str, ...] = ()
    monitoring: tuple[str, ...] = ()
    # every host of the site in inventory order (set by sites(); else the groups' hosts in turn)
    members: tuple[str, ...] = field(default=(), kw_only=True, repr=False, compare=False)

    @property
    def hosts(self) -> tuple[str, ...]:
        """Every host of the site, once each, in inventory order."""
        listed = (*self.members, *self.servers, *self.clients, *self.cameras, *self.monitoring)
        return tuple(dict.fromkeys(listed))


def sites(inventory: Inventory) -> dict[str, Site]:
    """The inventory's sites, in order of first appearance among its member hosts
    (Inventory.members()); hosts without a site are in none (see unsited())."""
    found: dict[str, dict[str, list[str]]] = {}
    order: dict[str, list[str]] = {}
    for host in inventory.members():
        name = site_of(host)
        if not name:
            continue
        groups = found.setdefault(name, {"servers": [], "clients": [], "cameras": [], "monitoring": []})
        order.setdefault(name, []).append(host.name)
        for role, group in (
            ("servers", SERVERS_GROUP),
            ("clients", CLIENTS_GROUP),
            ("cameras", CAMERAS_GROUP),
            ("monitoring", MONITORING_GROUP),
        ):
            if group in host.groups:
                groups[role].append(host.name)
    return {
        name: Site(
            name,
            servers=tuple(groups["servers"]),
            clients=tuple(groups["clients"]),
            cameras=tuple(groups["cameras"]),
            monitoring=tuple(groups["monitoring"]),
            members=tuple(order[name]),
        )
        for name, groups in found.items()
    }


def unsited(inventory: Inventory) -> list[str]:
    """The member hosts with no site, in inventory order."""
    return [host.name for host in inventory.members() if not site_of(host)]
