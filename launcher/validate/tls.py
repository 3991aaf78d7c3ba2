"""Remote (mTLS) mode before the run: who uses TLS, the certificates they would get, the proxies' ports.

Which hosts use TLS is the roles' own rule (`tls_plan` in plugins/filter/ovms_common.py), run here
on the inventory's checked values: a server runs the proxy
(`ovms_tls_proxy_enabled`, roles/ovms_tls_proxy) when `ovms_tls_enabled` is set on it, or when a
client of it is another inventory host or sets `ovms_tls_enabled`; a client dials over mTLS
(`ovms_client_tls`, roles/ovms_client) when it sets `ovms_tls_enabled`, when its server is another
host, or when that server runs the proxy.

Refused before anything runs: no readable CA bundle (or, for servers, CRL) in the certificates
folder, an expired CRL (the proxy would refuse every client), and a host certificate that is
expired, not yet valid, revoked, not issued by a CA of the bundle, or whose key does not match it,
and a server certificate whose subjectAltNames lack the address its clients dial. A host whose
certificate is *missing* is left to the run: that host fails alone with "run `launcher certs
generate`" and the others deploy (this is how a revoked client drops out).
"""

from __future__ import annotations

import errno
import os
import re
import stat
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature

from launcher.content import content
from launcher.inventory import Inventory, InventoryHost
from launcher.pki.inspection import leaf_sans
from launcher.pki.keys import key_matches, parse_private_key
from launcher.pki.layout import CERTS_DIR_ENV, Kind, PkiLayout, default_certs_dir
from launcher.pki.names import san_set, san_text, typed_san
from launcher.validate import common_role
from launcher.validate.crosschecks import resolve_servers
from launcher.validate.origins import VarOrigins
from launcher.validate.problems import Problem
from launcher.validate.variables import HostVars, RoleDefaults, check_hosts
from launcher.validate.view import View

_CRL_BLOCK = re.compile(rb"-----BEGIN X509 CRL-----.+?-----END X509 CRL-----", re.DOTALL)
_WILDCARD = ("0.0.0.0", "::")


@dataclass(frozen=True)
class TlsPlan:
    """Servers that run the proxy, and client -> server for the clients that dial over mTLS."""

    servers: frozenset[str]
    clients: Mapping[str, str]

    @property
    def remote(self) -> bool:
        return bool(self.servers or self.clients)


def _tls(checked: HostVars | None) -> View | None:
    """The host's valid ovms_tls_* variables (None when one is invalid: reported already)."""
    return checked.get("ovms_tls_") if checked is not None else None


def _enabled(checked: HostVars | None) -> bool:
    tls = _tls(checked)
    return bool(tls and tls.enabled and "ovms_tls_enabled" not in checked.deferred)  # type: ignore[union-attr]


def tls_plan(inventory: Inventory, hosts: Mapping[str, HostVars], assigned: Mapping[str, str]) -> TlsPlan:
    """The ovms_common role's remote-mode rule (`tls_plan` of its filter plugin, which the roles run
    as `ovms_tls_plan`) applied to the hosts' checked values; a value the launcher cannot resolve
    (a template: deferred) counts as unset, as before a run nothing else can be known of it."""
    servers = [s.name for s in inventory.servers]
    forced: dict[str, bool | None] = {}
    for server in servers:
        tls = _tls(hosts.get(server))
        deferred = "ovms_tls_proxy_enabled" in hosts[server].deferred if server in hosts else True
        forced[server] = None if tls is None or deferred else tls.proxy_enabled
    enabled = {h: _enabled(hosts.get(h)) for h in dict.fromkeys([*servers, *assigned])}
    plan = common_role.filters().tls_plan(servers, dict(assigned), enabled, forced)
    return TlsPlan(frozenset(plan["servers"]), plan["clients"])


COMPUTED_TLS_VAR = "ovms_common_tls"


def check_tls_not_set(
    inventory: Inventory, origins: VarOrigins, extravars: Mapping[str, Any]
) -> list[Problem]:
    """`ovms_common_tls` set by the user: the roles compute it (roles/ovms_common/tasks/tls_plan.yml)
    and trust it, so a set value could switch mTLS off behind the plan the validation checks."""
    message = "computed by the roles (tasks/tls_plan.yml); not a setting"
    fix = f"remove {COMPUTED_TLS_VAR}; mTLS follows ovms_tls_enabled and the inventory's servers and clients"
    if COMPUTED_TLS_VAR in extravars:
        return [Problem(origins.find(COMPUTED_TLS_VAR), COMPUTED_TLS_VAR, message, fix)]
    return [
        Problem(
            origins.find(COMPUTED_TLS_VAR, host.name, host.groups),
            COMPUTED_TLS_VAR,
            message,
            fix,
            (host.name,),
        )
        for host in inventory.hosts.values()
        if COMPUTED_TLS_VAR in host.vars
    ]


def remote_plan(inventory: Inventory, extravars: Mapping[str, Any]) -> tuple[dict[str, HostVars], TlsPlan]:
    """The hosts' checked variables and the TLS plan of an inventory with its extra vars, outside a
    validation (`launcher certs`, the deploy's renewal); their problems are the validation's to report."""
    origins = VarOrigins(inventory.sources, extravars)
    hosts, _ = check_hosts(inventory, extravars, RoleDefaults.load(content().roles), origins)
    assigned, _ = resolve_servers(inventory, hosts, origins)
    return hosts, tls_plan(inventory, hosts, assigned)


def certs_root(checked: HostVars) -> tuple[Path, str]:
    """The controller folder this host's certificates come from, and what sets it."""
    tls = _tls(checked)
    if tls is not None and tls.certs_dir and "ovms_tls_certs_dir" not in checked.deferred:
        return Path(tls.certs_dir), "ovms_tls_certs_dir"
    default = "ovms_tls_certs_dir (default: the launcher's PKI folder)"
    setter = CERTS_DIR_ENV if os.environ.get(CERTS_DIR_ENV) else default
    return default_certs_dir().expanduser().resolve(), setter


_MISSING = "is missing"


def _read(path: Path) -> tuple[bytes | None, str | None]:
    """A file the hosts would receive, or why it cannot be used as such (a missing file, a broken link,
    not a regular file, unreadable): one stat and one read, as 1,000 hosts' certificates are read."""
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP):
            return None, _MISSING
        return None, f"cannot be read: {exc.strerror}"
    except ValueError:  # a NUL in the path: no such file, as Path.exists() says
        return None, _MISSING
    if not stat.S_ISREG(mode):
        return None, "is not a regular file"
    try:
        return path.read_bytes(), None
    except PermissionError:
        return None, "cannot be read (permissions)"
    except OSError as exc:
        return None, f"cannot be read: {exc.strerror}"


def _when(moment: datetime) -> str:
    return f"{moment:%Y-%m-%d %H:%M} UTC"


@dataclass
class _Trust:
    """The CA bundle and CRL of one certificates folder."""

    root: Path
    setter: str
    cas: list[x509.Certificate] = field(default_factory=list)
    revoked: dict[x509.Name, set[int]] = field(default_factory=dict)
    bundle_ok: bool = False

    def issuer_of(self, cert: x509.Certificate) -> x509.Certificate | None:
        for ca in self.cas:
            if cert.issuer != ca.subject:
                continue
            try:
                cert.verify_directly_issued_by(ca)
            except (ValueError, TypeError, InvalidSignature):
                continue
            return ca
        return None

    def generate_fix(self, what: str) -> str:
        return f"run `launcher certs generate -i INVENTORY --dir {self.root}` ({what}), then deploy"


def _load_trust(
    root: Path, setter: str, hosts: tuple[str, ...], servers: bool, now: datetime
) -> tuple[_Trust, list[Problem]]:
    layout = PkiLayout(root)
    trust = _Trust(root, setter)
    problems: list[Problem] = []
    data, reason = _read(layout.bundle)
    if data is not None:
        try:
            trust.cas = x509.load_pem_x509_certificates(data)
        except ValueError:
            reason = "holds no PEM certificate"
    if reason is not None:
        problems.append(
            Problem(
                str(layout.bundle),
                setter,
                f"remote (mTLS) mode needs the CA bundle of the certificates folder {root}, but "
                f"ca-bundle.pem {reason}",
                trust.generate_fix("it creates the CA, the bundle and every host's certificate")
                + f"; or point {setter.split()[0]} at the folder that holds your PKI",
                hosts,
            )
        )
        return trust, problems
    trust.bundle_ok = True
    for ca in trust.cas:
        if ca.not_valid_after_utc <= now:
            problems.append(
                Problem(
                    str(layout.bundle),
                    "notAfter",
                    f"the CA {ca.subject.rfc4514_string()} expired on {_when(ca.not_valid_after_utc)}: "
                    "no certificate it issued is accepted",
                    "rotate the CA: `launcher certs rotate` (docs/pki.md, Rotating the CA), then deploy",
                    hosts,
                )
            )
    if not servers:
        return trust, problems
    data, reason = _read(layout.crl)
    blocks = _CRL_BLOCK.findall(data) if data is not None else []
    if data is not None and not blocks:
        reason = "holds no PEM CRL"
    if reason is not None:
        problems.append(
            Problem(
                str(layout.crl),
                setter,
                f"the mTLS proxy needs the revocation list, but crl.pem {reason}",
                trust.generate_fix("it writes crl.pem"),
                hosts,
            )
        )
        return trust, problems
    for block in blocks:
        try:
            crl = x509.load_pem_x509_crl(block)
        except ValueError:
            fix = trust.generate_fix("it rewrites crl.pem")
            problems.append(Problem(str(layout.crl), "X509 CRL", "a CRL of crl.pem cannot be parsed", fix))
            continue
        trust.revoked.setdefault(crl.issuer, set()).update(r.serial_number for r in crl)
        if crl.next_update_utc is not None and crl.next_update_utc <= now:
            problems.append(
                Problem(
                    str(layout.crl),
                    "nextUpdate",
                    f"the CRL of {crl.issuer.rfc4514_string()} expired on {_when(crl.next_update_utc)}: "
                    "the proxy would refuse every client",
                    trust.generate_fix("it re-signs the CRL"),
                    hosts,
                )
            )
    return trust, problems


def _dialled_by(host: InventoryHost) -> tuple[str, str]:
    """The address other hosts dial on a server (its clients: ovms_client_server_address of
    roles/ovms_client) or a client host's metrics gateway (the monitoring hosts), and the variable that
    sets it: the roles' rule (`advertised_address` of their filter plugin)."""
    _, variable = common_role.filters().advertised_address(host.name, host.vars)
    return host.advertise_address, variable


def _check_leaf(
    trust: _Trust,
    kind: Kind,
    name: str,
    now: datetime,
    dialled: tuple[str, str] | None,
) -> list[Problem]:
    layout = PkiLayout(trust.root)
    cert_path, key_path = layout.leaf_cert(kind, name), layout.leaf_key(kind, name)
    data, reason = _read(cert_path)
    if reason == _MISSING:
        return []  # the run fails this host alone, asking for `launcher certs generate`
    hosts = (name,)
    reissue = trust.generate_fix("it re-issues the certificate")
    cert: x509.Certificate | None = None
    if data is not None:
        try:
            cert = x509.load_pem_x509_certificate(data)
        except ValueError:
            reason = "is not a PEM certificate"
    if cert is None:
        message = f"the {kind.value} certificate {reason}"
        return [Problem(str(cert_path), f"{kind.value}.pem", message, reissue, hosts)]
    problems: list[Problem] = []

    def add(key: str, message: str, fix: str = reissue) -> None:
        problems.append(Problem(str(cert_path), key, message, fix, hosts))

    issuer = trust.issuer_of(cert)
    if issuer is None:
        add(
            "issuer",
            f"not issued by a CA of {layout.bundle} (issuer {cert.issuer.rfc4514_string()}): "
            "the other side would refuse it",
            reissue + "; during a CA rotation deploy the bundle first (docs/pki.md)",
        )
    elif cert.serial_number in trust.revoked.get(issuer.subject, set()):
        add(
            "serialNumber",
            f"certificate {cert.serial_number:x} is revoked (listed in {layout.crl})",
            trust.generate_fix("it issues a new certificate for a host still in the inventory"),
        )
    if cert.not_valid_after_utc <= now:
        expired = _when(cert.not_valid_after_utc)
        add("notAfter", f"the {kind.value} certificate of {name} expired on {expired}")
    elif cert.not_valid_before_utc > now:
        add(
            "notBefore",
            f"the {kind.value} certificate of {name} is not valid before {_when(cert.not_valid_before_utc)}",
            "check the controller's clock, or " + reissue,
        )
    if dialled is not None:
        address, variable = dialled
        try:
            wanted = san_text(typed_san(address)).lower()
        except ValueError:
            wanted = None
        names = san_set(leaf_sans(cert))
        if wanted is not None and wanted not in {n.lower() for n in names}:
            add(
                "subjectAltName",
                f"does not name {address!r}, the address its clients dial ({variable} of {name}); "
                f"it names {', '.join(sorted(names)) or 'nothing'}, so every client would refuse the server",
                trust.generate_fix("it re-issues the certificate with the inventory's addresses")
                + f"; or set ovms_advertise_address of {name} to a name the certificate holds",
            )
    key_data, key_reason = _read(key_path)
    if key_reason != _MISSING:
        if key_data is not None:
            try:
                matches = key_matches(cert, parse_private_key(key_data))
            except ValueError as exc:
                key_reason = f"is unusable: {exc}"
            else:
                key_reason = None if matches else "does not match the certificate"
        if key_reason is not None:
            problems.append(
                Problem(str(key_path), f"{kind.value}.key", f"the private key {key_reason}", reissue, hosts)
            )
    return problems


def check_certificates(
    inventory: Inventory,
    hosts: Mapping[str, HostVars],
    plan: TlsPlan,
    selected: Iterable[str] | None = None,
    now: datetime | None = None,
    more: Iterable[tuple[str, Kind]] = (),
) -> list[Problem]:
    """What the TLS hosts (of `selected`, default all) would receive is present, trusted and valid:
    the plan's servers and clients, and `more` (host, kind of certificate): the monitoring's
    (launcher/validate/monitoring.py `certificate_users`)."""
    now = now or datetime.now(UTC)
    chosen = set(hosts) if selected is None else set(selected)
    users = [(s, Kind.SERVER) for s in sorted(plan.servers)]
    users += [(c, Kind.CLIENT) for c in sorted(plan.clients)]
    by_root: dict[Path, tuple[str, list[tuple[str, Kind]]]] = {}
    for name, kind in dict.fromkeys([*users, *more]):
        if name not in chosen:
            continue
        root, setter = certs_root(hosts[name])
        by_root.setdefault(root, (setter, []))[1].append((name, kind))
    problems: list[Problem] = []
    for root, (setter, members) in by_root.items():
        names = tuple(dict.fromkeys(n for n, _ in members))
        has_server = any(k is Kind.SERVER for _, k in members)
        trust, found = _load_trust(root, setter, names, has_server, now)
        problems += found
        if not trust.bundle_ok:
            continue
        for name, kind in members:
            dialled = _dialled_by(inventory.host(name)) if kind is Kind.SERVER else None
            problems += _check_leaf(trust, kind, name, now, dialled)
    return problems


def check_proxy_ports(
    hosts: Mapping[str, HostVars],
    origins: VarOrigins,
    plan: TlsPlan,
    machine_of: Callable[[HostVars], str],
) -> list[Problem]:
    """Two proxies on one machine cannot publish the same port (on overlapping addresses)."""
    problems: list[Problem] = []
    taken: dict[str, list[tuple[str, int, str, str]]] = {}  # machine -> (bind, port, host, variable)
    for name in sorted(plan.servers):
        checked = hosts[name]
        tls = _tls(checked)
        if tls is None:
            continue
        machine = machine_of(checked)
        ports = [("ovms_tls_port", tls.port)]
        if tls.rest_port:
            ports.append(("ovms_tls_rest_port", tls.rest_port))
        for variable, port in ports:
            for bind, other_port, other, _ in taken.get(machine, []):
                overlap = (
                    bind == tls.bind_address
                    or _WILDCARD[0] in (bind, tls.bind_address)
                    or (_WILDCARD[1] in (bind, tls.bind_address))
                )
                if other_port == port and overlap and other != name:
                    problems.append(
                        Problem(
                            origins.find(variable, name, checked.host.groups),
                            variable,
                            f"port {port} is also published by the mTLS proxy of {other} on the same machine",
                            f"give each server on one machine its own {variable} "
                            "(or its own ovms_tls_bind_address)",
                            (name,),
                        )
                    )
                    break
            taken.setdefault(machine, []).append((tls.bind_address, port, name, variable))
    return problems
