"""Ansible inventories, read by ansible-core itself (InventoryManager, DataLoader, VariableManager).

Files or directories, several at once, with group_vars/ and host_vars/ applied exactly as
ansible-playbook applies them. The launcher's own groups (servers, clients, cameras, monitoring) are
named once, in playbooks/vars/groups.yml, which the playbooks read too (`load_groups`). Host variables
the launcher reads:

- `ansible_host`: the address Ansible connects to (default: the inventory name);
- `ovms_advertise_address`: the address other hosts dial on a server or, for the clients' metrics
  gateway, on a client host (default: `ansible_host`; the roles' rule `advertised_address` of
  plugins/filter/ovms_common.py);
- `ovms_tls_extra_sans`: extra subjectAltNames for a server certificate (a server's, or a client host's
  metrics gateway's), e.g. `["DNS:x", "IP:y"]`;
- `ovms_monitoring_enabled`: whether the host runs its part of the monitoring (default: ovms_common's,
  roles/ovms_common/defaults/main.yml; `monitoring_enabled` applies the extra vars over it).
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from launcher.content import content
from launcher.errors import LauncherError

# role -> inventory group, the one list the playbooks read with `vars_files` (key `ovms_groups`)
GROUPS_FILE = content().playbooks / "vars" / "groups.yml"
GROUPS_KEY = "ovms_groups"
_GROUP_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# the roles the launcher itself tells apart (each must have a group in the file)
LAUNCHER_ROLES = ("servers", "clients", "cameras", "monitoring")


@cache
def load_groups(path: Path = GROUPS_FILE) -> dict[str, str]:
    """The launcher's inventory groups by role, in the playbooks' order ({"servers": <group name>,
    "clients": ..., "cameras": ..., "monitoring": ...}), read from playbooks/vars/groups.yml."""
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise LauncherError(f"cannot read the launcher's groups: {exc}", file=path) from exc
    groups = data.get(GROUPS_KEY) if isinstance(data, dict) else None
    if not isinstance(groups, dict) or not all(
        isinstance(k, str) and isinstance(v, str) and _GROUP_NAME.match(v) for k, v in groups.items()
    ):
        raise LauncherError(
            "must map each role to an inventory group name",
            file=path,
            key=GROUPS_KEY,
            fix="write it as `ovms_groups: {ROLE: GROUP, ...}` for " + ", ".join(LAUNCHER_ROLES),
        )
    missing = set(LAUNCHER_ROLES) - set(groups)
    if missing:
        raise LauncherError(
            f"has no group for {', '.join(sorted(missing))}", file=path, key=GROUPS_KEY, fix="add it"
        )
    return dict(groups)


GROUPS = load_groups()
SERVERS_GROUP = GROUPS["servers"]
CLIENTS_GROUP = GROUPS["clients"]
CAMERAS_GROUP = GROUPS["cameras"]
MONITORING_GROUP = GROUPS["monitoring"]
# deployment-wide switch of the monitoring (roles/ovms_common/defaults/main.yml holds its default)
MONITORING_VAR = "ovms_monitoring_enabled"


def group_list(roles: Sequence[str] | None = None) -> str:
    """Group names of `roles` (default: every group) for messages: "A, B or C"."""
    names = [GROUPS[r] for r in roles] if roles is not None else list(GROUPS.values())
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"


# Variables the VariableManager adds by itself; not part of what the inventory says about a host.
_MAGIC_VARS = frozenset(
    {
        "ansible_config_file",
        "ansible_facts",
        "ansible_playbook_python",
        "ansible_version",
        "ansible_check_mode",
        "ansible_diff_mode",
        "ansible_forks",
        "ansible_inventory_sources",
        "ansible_verbosity",
        "group_names",
        "groups",
        "hostvars",
        "inventory_dir",
        "inventory_file",
        "inventory_hostname",
        "inventory_hostname_short",
        "omit",
        "playbook_dir",
    }
)


@dataclass(frozen=True)
class InventoryHost:
    """One host: its inventory name, groups, and variables as ansible-core resolved them (untemplated);
    whether it runs its part of the monitoring; for server and client hosts (they may be dialled over
    mTLS: a server's proxy, a client host's metrics gateway) the advertised address and extra SANs."""

    name: str
    groups: tuple[str, ...]
    vars: Mapping[str, Any] = field(repr=False)
    ansible_host: str
    # the host's ovms_monitoring_enabled (default: the roles' own, monitoring_default())
    monitoring_enabled: bool = field(kw_only=True, default_factory=lambda: monitoring_default())
    advertise_address: str = ""
    extra_sans: tuple[str, ...] = ()

    def in_group(self, group: str) -> bool:
        return group in self.groups


@dataclass(frozen=True)
class OvmsServer(InventoryHost):
    """A host of the servers group."""


@dataclass(frozen=True)
class Inventory:
    sources: tuple[Path, ...]
    hosts: Mapping[str, InventoryHost]
    servers: tuple[OvmsServer, ...]
    clients: tuple[InventoryHost, ...]
    cameras: tuple[InventoryHost, ...]
    # the hosts of the monitoring group (Prometheus runs on those whose monitoring is enabled)
    monitoring: tuple[InventoryHost, ...]
    # ansible-core's InventoryManager the hosts were read from: host patterns (`--limit`) are matched
    # by it, as ansible-playbook matches them (launcher.validate.options.check_limit)
    manager: Any = field(repr=False, compare=False)

    def host(self, name: str) -> InventoryHost:
        try:
            return self.hosts[name]
        except KeyError:
            raise LauncherError(
                f"host {name!r} is not in the inventory", file=self.source_label, fix="check the host name"
            ) from None

    def group(self, name: str) -> list[InventoryHost]:
        return [h for h in self.hosts.values() if name in h.groups]

    def members(self) -> list[InventoryHost]:
        """The hosts of any of the launcher's groups (playbooks/vars/groups.yml): those a run touches."""
        wanted = set(GROUPS.values())
        return [h for h in self.hosts.values() if wanted.intersection(h.groups)]

    @property
    def source_label(self) -> str:
        return ", ".join(str(s) for s in self.sources)


def plain(value: Any) -> Any:
    """Ansible's tagged values (2.19 data tagging) as plain Python values: the rule engine's conversion
    (plugins/module_utils/ovms_rules.py), which the roles' check applies too."""
    from launcher.validate.rules import engine  # here: launcher.validate imports this module

    return engine().plain(value)


@dataclass
class _ParseReport:
    failures: dict[str, list[str]] = field(default_factory=dict)  # reason -> plugins that gave it
    warnings: list[str] = field(default_factory=list)

    def summary(self) -> str:
        parts = [f"{'/'.join(plugins)} plugin: {reason}" for reason, plugins in self.failures.items()]
        return "; ".join(parts) or "no inventory plugin accepted it"


@contextlib.contextmanager
def _capture_ansible_display(report: _ParseReport) -> Iterator[None]:
    """Ansible reports parse failures as display warnings: keep them for our own error message."""
    from ansible.inventory import manager as manager_module

    display = manager_module.display
    original_error, original_warning = display.error_as_warning, display.warning

    def record_failure(msg: str, exception: BaseException | None = None, **_: Any) -> None:
        plugin = re.search(r"'([\w.]+)' plugin", msg)
        reason = " ".join(str(exception if exception is not None else msg).split())
        report.failures.setdefault(reason, []).append(plugin.group(1) if plugin else "?")

    def record_warning(msg: str, *args: Any, **kwargs: Any) -> None:
        report.warnings.append(msg)

    display.error_as_warning = record_failure  # type: ignore[method-assign]
    display.warning = record_warning  # type: ignore[method-assign]
    try:
        yield
    finally:
        display.error_as_warning = original_error  # type: ignore[method-assign]
        display.warning = original_warning  # type: ignore[method-assign]


@contextlib.contextmanager
def ansible_warnings_kept() -> Iterator[list[str]]:
    """Ansible's display warnings (e.g. "Could not match supplied host pattern") are collected in the
    list yielded instead of printed: the launcher reports such problems in its own words."""
    report = _ParseReport()
    with _capture_ansible_display(report):
        yield report.warnings


def _manager_class() -> type:
    from ansible.inventory.manager import InventoryManager, display

    class StrictInventoryManager(InventoryManager):
        """Every inventory file must parse: ansible-core itself would only warn and carry on."""

        def parse_source(self, source: str, cache: bool = False) -> bool:
            if Path(source).is_dir():
                return super().parse_source(source, cache=cache)
            report = _ParseReport()
            with _capture_ansible_display(report):
                parsed = super().parse_source(source, cache=cache)
            if not parsed:
                raise LauncherError(
                    f"not a valid Ansible inventory: {report.summary()}",
                    file=source,
                    fix="check it with `ansible-inventory -i FILE --list`",
                )
            for warning in report.warnings:
                display.warning(warning)
            return bool(parsed)

    return StrictInventoryManager


def _loader_class() -> type:
    from ansible._internal._datatag._tags import SourceWasEncrypted
    from ansible.parsing.dataloader import DataLoader

    from launcher.inventory_yaml import NotPlain, load_source

    class SourcesLoader(DataLoader):
        """Ansible's loader, but an inventory file (a source, or a file at the top of a source
        folder: one hosts.yml of a 1,000-host fleet) is read by launcher/inventory_yaml.py when it is
        plain YAML (ansible-core's loader otherwise) and handed to the inventory plugins as parsed,
        not deep-copied for each of them. The `auto` plugin reads it first, only to look for its
        `plugin:` key, and the plugin that then reads it (`yaml`, or the one `plugin:` names) asks
        for it trusted as a template: the source is parsed once, trusted, and the parse given to
        both (to the next trusted read only, once; this loader lives for one load_inventory). Other files
        (group_vars, host_vars) are read and copied as ansible-core reads and copies them."""

        sources: frozenset[str] = frozenset()

        def __init__(self) -> None:
            super().__init__()
            self._is_source: dict[str, bool] = {}  # file name as asked -> whether it is a source
            self._parsed: dict[str, Any] = {}  # a source's trusted parse, kept for the next trusted read

        def _source(self, file_name: str) -> bool:
            if file_name not in self._is_source:
                path = Path(self.path_dwim(file_name)).resolve()
                self._is_source[file_name] = str(path) in self.sources or str(path.parent) in self.sources
            return self._is_source[file_name]

        def load_from_file(self, file_name: str, *args: Any, **kwargs: Any) -> Any:
            if not self._source(file_name):
                return super().load_from_file(file_name, *args, **kwargs)
            if args or kwargs.get("json_only"):
                return super().load_from_file(file_name, *args, **{**kwargs, "unsafe": True})
            path = self.path_dwim(file_name)
            if path in self._parsed and kwargs.get("trusted_as_template"):
                return self._parsed.pop(path)
            text = self.get_text_file_contents(path)
            try:
                if SourceWasEncrypted.is_tagged_on(text):
                    raise NotPlain("encrypted")
                data = load_source(text, path, trusted_as_template=True)
            except NotPlain:
                kwargs["unsafe"] = True
                return super().load_from_file(file_name, *args, **kwargs)
            if not kwargs.get("trusted_as_template"):
                self._parsed[path] = data
            return data

    return SourcesLoader


@contextlib.contextmanager
def _no_facts_to_clean() -> Iterator[None]:
    """VariableManager.get_vars cleans each host's cached facts before it adds them, listing every
    connection plugin on disk to do so even when there are none (most of its time on a 1,000-host
    inventory read in a fresh process): an empty set of facts is returned as it is, the same result."""
    from ansible.vars import manager as vars_manager

    original = vars_manager.clean_facts

    def clean_facts(facts: Any) -> Any:
        return {} if not facts else original(facts)

    vars_manager.clean_facts = clean_facts
    try:
        yield
    finally:
        vars_manager.clean_facts = original


def _check_source(source: Path) -> None:
    if not source.exists():
        raise LauncherError("inventory not found", file=source, fix="pass an existing file or directory")
    if not os.access(source, os.R_OK | (os.X_OK if source.is_dir() else 0)):
        raise LauncherError("inventory not readable", file=source, fix="check its permissions")


def load_inventory(sources: Sequence[str | Path]) -> Inventory:
    """Load one or more inventory files or directories; LauncherError naming the file on any problem."""
    if not sources:
        raise LauncherError(
            "no inventory given", key="--inventory", fix="pass -i PATH (a file or a directory)"
        )
    paths = tuple(Path(s).expanduser().resolve() for s in sources)
    for path in paths:
        _check_source(path)

    from ansible.errors import AnsibleError
    from ansible.template import Templar
    from ansible.vars.manager import VariableManager

    loader = _loader_class()()
    loader.sources = frozenset(str(p) for p in paths)
    label = ", ".join(str(p) for p in paths)
    try:
        manager = _manager_class()(loader=loader, sources=[str(p) for p in paths])
        variables = VariableManager(loader=loader, inventory=manager)
        hosts: dict[str, InventoryHost] = {}
        for host in manager.get_hosts(ignore_restrictions=True):
            with _no_facts_to_clean():
                all_vars = variables.get_vars(host=host, include_hostvars=False)
            groups = tuple(sorted(str(g) for g in all_vars.get("group_names", [])))
            templar = Templar(loader=loader, variables=all_vars)
            name = plain(host.name)  # a plain str: the tagged one costs in every path and lookup
            hosts[name] = _make_host(name, groups, all_vars, templar, label)
    except AnsibleError as exc:
        broken = _broken_vars_file(paths)
        raise LauncherError(f"ansible-core cannot load the inventory: {exc}", file=broken or label) from exc
    servers = tuple(h for h in hosts.values() if isinstance(h, OvmsServer))
    clients = tuple(h for h in hosts.values() if CLIENTS_GROUP in h.groups)
    cameras = tuple(h for h in hosts.values() if CAMERAS_GROUP in h.groups)
    monitoring = tuple(h for h in hosts.values() if MONITORING_GROUP in h.groups)
    return Inventory(
        sources=paths,
        hosts=hosts,
        servers=servers,
        clients=clients,
        cameras=cameras,
        monitoring=monitoring,
        manager=manager,
    )


def _broken_vars_file(paths: Sequence[Path]) -> Path | None:
    """Ansible's variable errors do not say which group_vars/host_vars file failed: find it."""
    import yaml

    for source in paths:
        base = source if source.is_dir() else source.parent
        for folder in ("group_vars", "host_vars"):
            root = base / folder
            candidates = sorted(root.rglob("*")) if root.is_dir() else []
            for candidate in candidates:
                if not candidate.is_file() or candidate.name.startswith("."):
                    continue
                try:
                    yaml.safe_load(candidate.read_text())
                except (OSError, UnicodeDecodeError, yaml.YAMLError):
                    return candidate
    return None


def _templated(templar: Any, value: Any, host: str, key: str, label: str) -> Any:
    from ansible.errors import AnsibleError

    try:
        return plain(templar.template(value))
    except AnsibleError as exc:
        raise LauncherError(f"cannot resolve the variable: {exc}", file=label, key=f"{host}: {key}") from exc


def _boolean(value: Any, *, file: str | None, key: str, fix: str) -> bool:
    """Ansible's rule for a boolean (`true`, `yes`, `on`, `1`... and their opposites)."""
    from ansible.module_utils.parsing.convert_bool import boolean

    try:
        return boolean(value, strict=True)
    except TypeError:
        raise LauncherError(f"must be true or false, got {value!r}", file=file, key=key, fix=fix) from None


_MONITORING_FIX = f"set {MONITORING_VAR} to true or false, for the whole inventory (all: vars, or -e)"


def monitoring_default() -> bool:
    """`ovms_monitoring_enabled` of roles/ovms_common/defaults/main.yml."""
    from launcher.common_defaults import common_default, defaults_file

    return _boolean(
        common_default(MONITORING_VAR), file=str(defaults_file()), key=MONITORING_VAR, fix=_MONITORING_FIX
    )


def monitoring_enabled(host: InventoryHost, extravars: Mapping[str, Any] | None = None) -> bool:
    """Whether `host` runs its part of the monitoring: the extra vars' `ovms_monitoring_enabled` (`-e`,
    over every host's value, as in Ansible), else the host's own (inventory, else the roles' default)."""
    if extravars is None or MONITORING_VAR not in extravars:
        return host.monitoring_enabled
    key = f"--extra-vars: {MONITORING_VAR}"
    return _boolean(extravars[MONITORING_VAR], file=None, key=key, fix=_MONITORING_FIX)


def _make_host(
    name: str, groups: tuple[str, ...], all_vars: Mapping[str, Any], templar: Any, label: str
) -> InventoryHost:
    host_vars = {k: plain(v) for k, v in all_vars.items() if k not in _MAGIC_VARS}
    address = name
    if "ansible_host" in host_vars and host_vars["ansible_host"] not in (None, ""):
        address = str(_templated(templar, all_vars["ansible_host"], name, "ansible_host", label))
    monitoring = monitoring_default()
    if host_vars.get(MONITORING_VAR) is not None:
        value = _templated(templar, all_vars[MONITORING_VAR], name, MONITORING_VAR, label)
        monitoring = _boolean(value, file=label, key=f"{name}: {MONITORING_VAR}", fix=_MONITORING_FIX)
    if SERVERS_GROUP not in groups and CLIENTS_GROUP not in groups:
        return InventoryHost(
            name=name, groups=groups, vars=host_vars, ansible_host=address, monitoring_enabled=monitoring
        )
    from launcher.validate import common_role  # the validate package imports this module

    resolved = {"ansible_host": address}
    if host_vars.get("ovms_advertise_address") not in (None, ""):
        resolved["ovms_advertise_address"] = _templated(
            templar, all_vars["ovms_advertise_address"], name, "ovms_advertise_address", label
        )
    # the roles' rule (filter ovms_advertised_address): ovms_advertise_address, else ansible_host,
    # else the inventory name
    advertise, _ = common_role.filters().advertised_address(name, resolved)
    extra: Any = []
    if "ovms_tls_extra_sans" in host_vars:
        extra = _templated(templar, all_vars["ovms_tls_extra_sans"], name, "ovms_tls_extra_sans", label)
    if extra is None:
        extra = []
    if isinstance(extra, str) or not isinstance(extra, list) or not all(isinstance(s, str) for s in extra):
        raise LauncherError(
            f"must be a list of strings, got {extra!r}",
            file=label,
            key=f"{name}: ovms_tls_extra_sans",
            fix='write it as a list, e.g. ovms_tls_extra_sans: ["DNS:ovms.example.com", "IP:192.0.2.10"]',
        )
    kind = OvmsServer if SERVERS_GROUP in groups else InventoryHost
    return kind(
        name=name,
        groups=groups,
        vars=host_vars,
        ansible_host=address,
        monitoring_enabled=monitoring,
        advertise_address=advertise,
        extra_sans=tuple(extra),
    )
