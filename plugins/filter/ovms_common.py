"""Rules every role applies, written once: the launcher imports this file too (launcher/validate/
safety.py, launcher/validate/tls.py, launcher/validate/crosschecks.py, launcher/inventory.py,
launcher/pki/layout.py; through launcher/validate/common_role.py)."""

from __future__ import annotations

import ipaddress
import posixpath
from collections.abc import Callable, Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import Any

# The launcher's inventory groups, written once in the collection's playbooks/vars/groups.yml (the
# playbooks read it with vars_files, the launcher as data): read here too, from this file's collection.
GROUPS_FILE = Path(__file__).resolve().parents[2] / "playbooks" / "vars" / "groups.yml"


@cache
def launcher_groups() -> dict[str, str]:
    """{"servers": group, "clients": group, "cameras": group} from playbooks/vars/groups.yml."""
    import yaml

    with GROUPS_FILE.open(encoding="utf-8") as handle:
        return dict(yaml.safe_load(handle)["ovms_groups"])


def ovms_is_ip_address(value: object) -> bool:
    """Whether `value` is an IPv4 or IPv6 address (Python's ipaddress; the collection needs no
    ansible.utils for it)."""
    try:
        ipaddress.ip_address(str(value))
    except ValueError:
        return False
    return True


def _rules_engine() -> Any:
    """The collection's rule engine (plugins/module_utils/ovms_rules.py): imported as Ansible runs it,
    by its path when the launcher loads this file by path."""
    try:
        from ansible_collections.ovms.edge.plugins.module_utils import ovms_rules
    except ImportError:
        import importlib.util

        path = Path(__file__).resolve().parents[1] / "module_utils" / "ovms_rules.py"
        spec = importlib.util.spec_from_file_location("ovms_edge_rules_filter", path)
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot load the rule engine {path}") from None
        ovms_rules = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(ovms_rules)
    return ovms_rules


# The role whose entry point `container` specifies a container spec (tasks/container.yml).
COMMON_ROLE_DIR = Path(__file__).resolve().parents[2] / "roles" / "ovms_common"


@cache
def _container_validator() -> Any:
    from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

    options = _rules_engine().load_options(str(COMMON_ROLE_DIR), "container")
    return ArgumentSpecValidator(options)


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value


def ovms_checked_containers(containers: Sequence[Mapping[str, Any]]) -> Sequence[Mapping[str, Any]]:
    """`containers` (as plain lists and dicts) once ansible-core's validator finds them as the
    `container` entry point of roles/ovms_common/meta/argument_specs.yml specifies (tasks/container.yml
    loops over this filter's result). The check is in the task itself, not in the validation task
    ansible-core adds to an import_role: a task result fewer for every container task a host runs
    (bench/notes.md); the imports say rolespec_validate: false."""
    from ansible.errors import AnsibleFilterError

    # plain lists and dicts, their values templated here: the validator deep-copies what it is given,
    # which ansible-core's lazily templated containers do not survive
    containers = _plain(containers)
    result = _container_validator().validate({"ovms_common_containers": containers})
    if result.error_messages:
        listed = containers if isinstance(containers, list) else []
        names = ", ".join(str(c.get("name")) for c in listed if isinstance(c, Mapping)) or "none"
        raise AnsibleFilterError(
            f"container specs ({names}) do not match the `container` entry point of "
            f"{COMMON_ROLE_DIR.name}/meta/argument_specs.yml: {'; '.join(result.error_messages)}. The role "
            "that builds them (its vars/main.yml or filter) has a bug: report it with this message."
        )
    return containers


def ovms_unsafe_dirs(
    folders: Sequence[Mapping[str, str]], system_dirs: Sequence[str], sensitive_dirs: Sequence[str] = ()
) -> list[str]:
    """'<variable>: <why>' for each {path, variable} that cannot be a data folder: the rule `data_dir`
    of roles/ovms_common/meta/rules.yml (tasks/purge.yml checks again right before it deletes)."""
    problem = _rules_engine().data_dir_problem
    return [
        f"{folder.get('variable', 'data folder')}: {why}"
        for folder in folders
        if (why := problem(folder.get("path"), system_dirs, sensitive_dirs))
    ]


def advertised_address(name: str, host_vars: Mapping[str, Any]) -> tuple[str, str]:
    """The address a server's clients and the controller dial, and the variable it comes from:
    `ovms_advertise_address`, else `ansible_host`, else the inventory name (an empty value is unset).
    The roles use it as the filter `ovms_advertised_address`; the launcher puts it into the server's
    certificate and checks it there."""
    for variable in ("ovms_advertise_address", "ansible_host"):
        value = host_vars.get(variable)
        if value is not None and str(value) != "":
            return str(value), variable
    return str(name), "inventory host name"


def ovms_advertised_address(host: str, hostvars: Mapping[str, Any]) -> str:
    """advertised_address() of an inventory host: `server | ovms_advertised_address(hostvars)`."""
    name = str(host)
    # not hostvars.get(): Ansible's hostvars give an undefined value for a host it does not know
    return advertised_address(name, hostvars[name] if name in hostvars else {})[0]  # noqa: SIM401


def site_servers(servers: Sequence[str], site_of: Callable[[str], str], only: str = "") -> dict[str, str]:
    """site -> its first server (servers-group order), read once for a whole inventory: `site_of`
    gives a host's site ("" for none; servers with no site are in no entry). `only`: that site's
    entry alone, reading the servers' sites no further than its first server."""
    first: dict[str, str] = {}
    for server in servers:
        site = site_of(str(server))
        if site and site not in first and (not only or site == only):
            first[site] = str(server)
            if only:
                break
    return first


def default_server(
    servers: Sequence[str], client: str, site: str = "", first_servers: Mapping[str, str] | None = None
) -> str:
    """The server a client uses when it sets no ovms_client_server: a client with a site (`site`, its
    ovms_site) uses the first server of its own site (`first_servers`: site_servers()); with no
    server in its site, or no site, the first host of the servers group; with no server in the
    inventory (e.g. a role run on its own), the client itself."""
    if site and first_servers and site in first_servers:
        return str(first_servers[site])
    return str(servers[0]) if len(servers) > 0 else str(client)


def _site(hostvars: Mapping[str, Any], host: str) -> str:
    """A host's ovms_site as Ansible resolves it ("" when unset or empty)."""
    if host not in hostvars:
        return ""
    value = hostvars[host].get("ovms_site")
    return "" if value is None else str(value)


def ovms_default_server(
    groups: Mapping[str, Sequence[str]], host: str, hostvars: Mapping[str, Any] | None = None
) -> str:
    """default_server() of the play's inventory: `groups | ovms_default_server(inventory_hostname,
    hostvars)` (without hostvars: sites unknown, the first server). Reads the servers' sites only
    until the first of the host's own site."""
    servers = list(groups.get(launcher_groups()["servers"], []))
    if hostvars is None or not servers or not (own := _site(hostvars, str(host))):
        return default_server(servers, host)
    return default_server(servers, host, own, site_servers(servers, lambda name: _site(hostvars, name), own))


def pki_host_files(layout: Mapping[str, Any], root: str, kind: str, host: str) -> dict[str, str]:
    """The controller files a host of `kind` (server or client) receives, by the name they get on the
    host: its certificate and key, the CA bundle, and for a server the CRL; never a CA key. `layout`
    is ovms_common_pki_layout (roles/ovms_common/defaults), `root` the certificates folder."""
    leaf = layout["leaves"][kind]
    folder = posixpath.join(str(root), leaf["dir"], str(host))
    files = {
        leaf["cert"]: posixpath.join(folder, leaf["cert"]),
        leaf["key"]: posixpath.join(folder, leaf["key"]),
        layout["bundle"]: posixpath.join(str(root), layout["bundle"]),
    }
    if kind == "server":
        files[layout["crl"]] = posixpath.join(str(root), layout["crl"])
    return files


def ovms_pki_host_files(layout: Mapping[str, Any], root: str, kind: str, host: str) -> dict[str, str]:
    """pki_host_files() as a filter: `ovms_common_pki_layout | ovms_pki_host_files(dir, 'server', host)`."""
    return pki_host_files(layout, root, kind, host)


def tls_plan(
    servers: Sequence[str],
    clients: Mapping[str, str],
    enabled: Mapping[str, bool],
    forced: Mapping[str, bool | None],
) -> dict[str, Any]:
    """The one rule of remote (mTLS) mode, for the roles (filter `ovms_tls_plan`) and the launcher
    (launcher/validate/tls.py imports this function).

    `servers`: the hosts of the servers group; `clients`: each client host -> the server it uses;
    `enabled`: hosts that set ovms_tls_enabled; `forced`: servers whose ovms_tls_proxy_enabled is set.
    A server runs the mTLS proxy when forced so, else when it sets ovms_tls_enabled or one of its
    clients is another host or sets ovms_tls_enabled. A client dials over mTLS when it sets
    ovms_tls_enabled, when its server is another host or sets it, or when its server runs the proxy.
    Returns {servers: [servers running the proxy], clients: {client: server} of mTLS clients}."""
    clients_of: dict[str, list[str]] = {}
    for client, server in clients.items():
        clients_of.setdefault(server, []).append(client)

    def proxy(server: str) -> bool:
        if forced.get(server) is not None:
            return bool(forced[server])
        return bool(enabled.get(server)) or any(
            c != server or bool(enabled.get(c)) for c in clients_of.get(server, [])
        )

    proxied = [s for s in servers if proxy(s)]
    tls_clients = {
        c: s for c, s in clients.items() if enabled.get(c) or c != s or enabled.get(s) or s in proxied
    }
    return {"servers": proxied, "clients": tls_clients}


def _flag(value: object) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on", "y", "t")
    return bool(value)


def ovms_tls_plan(
    groups: Mapping[str, Sequence[str]], hostvars: Mapping[str, Any], host: str | None = None
) -> dict[str, Any]:
    """tls_plan() of the play's inventory: `groups | ovms_tls_plan(hostvars, inventory_hostname)`.
    Reads what the inventory and extra vars set (ovms_client_server, ovms_tls_enabled,
    ovms_tls_proxy_enabled, ovms_site); a client without ovms_client_server uses default_server(),
    as roles/ovms_client does (its own site's first server, the site map read once per call).
    `host`, when it is in neither group (a role run on its own, e.g. by Molecule), is its own server
    and client."""
    names = launcher_groups()
    servers = list(groups.get(names["servers"], []))
    client_hosts = list(groups.get(names["clients"], []))
    if host is not None and host not in servers and host not in client_hosts:
        servers.append(host)
        client_hosts.append(host)
    clients: dict[str, str] = {}
    first_servers: dict[str, str] | None = None  # site -> its first server, read once when needed
    for client in client_hosts:
        chosen = hostvars[client].get("ovms_client_server")
        if chosen:
            clients[client] = str(chosen)
            continue
        site = _site(hostvars, client)
        if site and first_servers is None:
            first_servers = site_servers(servers, lambda name: _site(hostvars, name))
        clients[client] = default_server(servers, client, site, first_servers)
    hosts = dict.fromkeys([*servers, *clients])
    enabled = {h: _flag(hostvars[h].get("ovms_tls_enabled", False)) for h in hosts}
    forced: dict[str, bool | None] = {}
    for server in servers:
        value = hostvars[server].get("ovms_tls_proxy_enabled")
        forced[server] = None if value is None or value == "" else _flag(value)
    return tls_plan(servers, clients, enabled, forced)


def ovms_outside_groups(hosts: Sequence[str], groups: Mapping[str, Sequence[str]]) -> list[str]:
    """The hosts of `hosts` in neither the servers nor the clients group (each is its own server and
    client in ovms_tls_plan): `ansible_play_hosts_all | ovms_outside_groups(groups)`."""
    names = launcher_groups()
    members = {str(h) for kind in ("servers", "clients") for h in groups.get(names[kind], [])}
    return [str(h) for h in hosts if str(h) not in members]


class FilterModule:
    def filters(self) -> dict:
        return {
            "ovms_is_ip_address": ovms_is_ip_address,
            "ovms_checked_containers": ovms_checked_containers,
            "ovms_unsafe_dirs": ovms_unsafe_dirs,
            "ovms_tls_plan": ovms_tls_plan,
            "ovms_outside_groups": ovms_outside_groups,
            "ovms_advertised_address": ovms_advertised_address,
            "ovms_default_server": ovms_default_server,
            "ovms_pki_host_files": ovms_pki_host_files,
        }
