"""Pre-run validation of inventories, role variables, profiles and the models manifest.

`validate(inventories, extravars)` loads the inventory with ansible-core (launcher.inventory), checks
every host's `ovms_*` variables against the roles' argument specs and across hosts, and returns *all*
problems, each naming the file, the key and a fix. Nothing runs on any host.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from launcher.content import content
from launcher.errors import LauncherError
from launcher.inventory import Inventory, load_inventory
from launcher.sites import unsited
from launcher.validate.api import check_api_support
from launcher.validate.crosschecks import (
    ProfileInfo,
    check_groups,
    check_models,
    check_ports_and_names,
    check_profiles,
    check_rollout,
    machine_of,
    resolve_servers,
)
from launcher.validate.monitoring import check_monitoring, monitoring_plan
from launcher.validate.options import check_run_options
from launcher.validate.origins import VarOrigins
from launcher.validate.problems import Problem, from_error, merge_hosts
from launcher.validate.remote import check_models_stay_on_servers, check_reachable_servers
from launcher.validate.safety import check_host_names
from launcher.validate.sites import SiteSummary, check_site_values, check_sites, summarise
from launcher.validate.tls import check_certificates, check_proxy_ports, check_tls_not_set, tls_plan
from launcher.validate.variables import RoleDefaults, check_hosts

__all__ = ["Problem", "ValidationReport", "validate", "validate_for_destroy"]


@dataclass
class ValidationReport:
    problems: list[Problem]
    inventory: Inventory | None = None
    # what may not work but cannot be told before the run (shown, never blocking)
    warnings: list[Problem] = field(default_factory=list)
    assignments: dict[str, str] = field(default_factory=dict)
    profiles: dict[str, list[ProfileInfo]] = field(default_factory=dict)
    deferred: dict[str, set[str]] = field(default_factory=dict)
    # the monitoring hosts that run Prometheus (launcher/validate/monitoring.py)
    monitors: tuple[str, ...] = ()
    # the inventory's sites (ovms_site; launcher/validate/sites.py), {} when it has none, and the
    # member hosts without one
    sites: dict[str, SiteSummary] = field(default_factory=dict)
    unsited: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.problems

    def describe(self) -> str:
        if self.inventory is None:
            return "inventory not loaded"
        if self.sites:
            return self._describe_sites()
        servers = ", ".join(s.name for s in self.inventory.servers) or "none"
        parts = []
        for client in (h.name for h in self.inventory.clients):
            profiles = ", ".join(p.name for p in self.profiles.get(client, []))
            parts.append(f"{client} -> {self.assignments.get(client, '?')} ({profiles})")
        clients = ", ".join(parts) or "none"
        cameras = ", ".join(h.name for h in self.inventory.cameras)
        text = f"servers: {servers}; clients: {clients}" + (f"; cameras: {cameras}" if cameras else "")
        return text + (f"; monitoring: {', '.join(self.monitors)}" if self.monitors else "")

    def _describe_sites(self) -> str:
        """A line for the inventory, then one per site (and one for the hosts with no site)."""
        assert self.inventory is not None
        inventory = self.inventory
        head = (
            f"{len(self.sites)} site(s), {len(inventory.servers)} server(s), "
            f"{len(inventory.clients)} client(s)"
        )
        if inventory.cameras:
            head += f", {len(inventory.cameras)} camera host(s)"
        if self.monitors:
            head += f"; monitoring: {', '.join(self.monitors)}"
        lines = [head, *(f"  {site.describe()}" for site in self.sites.values())]
        if self.unsited:
            lines.append(f"  (no site): {', '.join(self.unsited)}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        sites: dict[str, Any] = {}
        if self.sites:
            sites = {
                "sites": {name: site.to_dict() for name, site in self.sites.items()},
                "unsited": list(self.unsited),
            }
        return {
            **sites,
            "type": "validation",
            "valid": self.ok,
            "problems": [p.to_dict() for p in self.problems],
            "warnings": [p.to_dict() for p in self.warnings],
            "servers": [s.name for s in self.inventory.servers] if self.inventory else [],
            "clients": dict(self.assignments),
            "cameras": [h.name for h in self.inventory.cameras] if self.inventory else [],
            "monitoring": list(self.monitors),
            "deferred": {h: sorted(v) for h, v in self.deferred.items() if v},
        }


def yaml_error_position(path: Path) -> str | None:
    """`line L, column C: problem` of a YAML file that does not parse (None when it parses or is no file)."""
    import yaml

    if path.suffix not in ("", ".yml", ".yaml") or not path.is_file():
        return None
    try:
        yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        if mark is None:
            return None
        return f"line {mark.line + 1}, column {mark.column + 1}: {exc.problem}"
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None
    return None


def validate_for_destroy(
    inventory: Inventory,
    extravars: Mapping[str, Any] | None = None,
    *,
    roles_dir: Path | None = None,
) -> list[Problem]:
    """What `launcher destroy` needs right: the host names, every variable's type and rules (the
    names it removes come from them, the data folders it may delete with `--purge` obey theirs).
    Profiles, models and certificates need not be valid to remove a deployment."""
    extravars = dict(extravars or {})
    roles_dir = roles_dir or content().roles
    origins = VarOrigins(inventory.sources, extravars)
    defaults = RoleDefaults.load(roles_dir)
    _, problems = check_hosts(inventory, extravars, defaults, origins)
    return merge_hosts(check_host_names(inventory, origins) + problems)


def validate(
    inventories: Sequence[str | Path],
    extravars: Mapping[str, Any] | None = None,
    *,
    manifest: Path | None = None,
    roles_dir: Path | None = None,
    profiles_dir: Path | None = None,
    certificates: bool = False,
    limit: str | None = None,
    tags: str | None = None,
    playbook: Path | None = None,
    inventory: Inventory | None = None,
) -> ValidationReport:
    """Every problem found in the inventories (with extra vars applied) before anything runs.

    `certificates`: also check what the mTLS hosts would receive (launcher/validate/tls.py), as
    `deploy` and `validate` do. `limit` / `tags`: the run's --limit and --tags (launcher/validate/options.py).
    `inventory`: the inventories already loaded (by `launcher deploy`, which renews certificates first).
    """
    extravars = dict(extravars or {})
    roles_dir = roles_dir or content().roles
    profiles_dir = profiles_dir or content().profiles
    playbook = playbook or content().playbook("deploy")
    try:
        inventory = inventory if inventory is not None else load_inventory(inventories)
    except LauncherError as exc:
        label = ", ".join(str(i) for i in inventories)
        problem = from_error(exc, default_file=label)
        where = yaml_error_position(Path(problem.file))
        if where is not None:
            fix = problem.fix or f"correct the YAML near {where.split(':')[0]}"
            problem = replace(problem, message=f"{problem.message} [YAML error at {where}]", fix=fix)
        return ValidationReport([problem])
    origins = VarOrigins(inventory.sources, extravars)
    defaults = RoleDefaults.load(roles_dir)
    hosts, host_problems = check_hosts(inventory, extravars, defaults, origins)
    problems = check_groups(inventory) + check_host_names(inventory, origins) + host_problems
    problems += check_site_values(inventory, origins, extravars)
    problems += check_tls_not_set(inventory, origins, extravars)
    assigned, more = resolve_servers(inventory, hosts, origins)
    problems += more
    problems += check_ports_and_names(hosts, origins)
    problems += check_models_stay_on_servers(inventory, origins)
    problems += check_reachable_servers(inventory, hosts, origins, assigned, machine_of)
    profiles, more = check_profiles(hosts, origins, profiles_dir)
    problems += more
    problems += check_models(hosts, origins, manifest, profiles, assigned)
    more, warnings = check_api_support(hosts, origins, profiles, assigned)
    problems += more
    plan = tls_plan(inventory, hosts, assigned)
    problems += check_proxy_ports(hosts, origins, plan, machine_of)
    monitoring = monitoring_plan(inventory, plan, extravars)
    more, more_warnings = check_monitoring(inventory, origins, plan, monitoring)
    problems += more
    warnings += more_warnings
    selected, more = check_run_options(inventory, limit, tags, playbook, roles_dir)
    problems += more
    problems += check_rollout(inventory, extravars, selected, problems)
    if certificates:
        problems += check_certificates(inventory, hosts, plan, selected, more=monitoring.certificate_users())
    left = [c.name for c in inventory.clients if "ovms_client_server" in hosts[c.name].deferred]
    found, more_warnings = check_sites(inventory, origins, assigned, left)
    problems, warnings = merge_hosts(problems), merge_hosts(warnings + more_warnings)
    return ValidationReport(
        problems=problems,
        inventory=inventory,
        assignments=assigned,
        profiles=profiles,
        deferred={name: h.deferred for name, h in hosts.items()},
        warnings=warnings,
        monitors=monitoring.monitors,
        sites=summarise(found, profiles, problems + warnings),
        unsited=tuple(unsited(inventory)) if found else (),
    )
