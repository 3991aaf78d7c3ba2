"""The drift report of `launcher diff`: what a deploy would change, per site and host.

`DriftCollector.handle` takes the runner events of a check-mode run of playbooks/deploy.yml (the same
dicts `launcher.runner.events.RunState` takes, so recorded events replay like live ones) and keeps
every changed result as a `Change` with a category:

- models: a model version the ovms_models role would copy to the server (`NAME vN`, said by its
  module ovms_models_swap), or a model entry of the server's config.json that would change
- images: a container that would run another image, an image the prechecks would pull or ship
- containers: a container that would be created or re-created, with the settings that differ
- profiles: a client profile that would be placed again
- certificates: a server certificate due for renewal (the launcher's dry-run renewal check), or the
  certificate files a host would receive (the TLS task files of roles/ovms_client and
  roles/ovms_monitoring, the `copy` of ovms_tls_proxy's present.yml)
- other: anything else (folders, networks, media, configuration files)

`DriftReport` groups the changes per site (launcher.sites; "" for hosts without one) and host, with
each host's status in the check run: `ok`, or `failed` / `unreachable` (not checked: its changes are
only those found before it stopped).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

CATEGORIES: tuple[str, ...] = ("models", "images", "containers", "profiles", "certificates", "other")

EXIT_NO_CHANGES = 0
EXIT_CHANGES = 3
EXIT_FAILED = 1

STATUSES: tuple[str, ...] = ("ok", "failed", "unreachable")

# Tasks of roles/ovms_models/tasks/version.yml are the steps of one version copy: the swap names it.
_MODEL_COPY_FILE = ("ovms_models", "version.yml")
# Task files whose changes are the client's profiles, the certificates, the images.
_PROFILE_FILES = frozenset({("ovms_client", "profile.yml"), ("ovms_client", "remote_profile.yml")})
# (task files of the roles, as roles/ROLE/tasks/FILE)
_CERTIFICATE_FILES = frozenset({"roles/ovms_client/tasks/tls.yml", "roles/ovms_monitoring/tasks/tls.yml"})
# (task file, module) pairs outside those files that place certificate files: the mTLS proxy's copies
_CERTIFICATE_TASKS = frozenset({("roles/ovms_tls_proxy/tasks/present.yml", "copy")})
_IMAGE_ACTIONS = ("docker_image", "docker_image_pull", "docker_image_load", "docker_image_push")


@dataclass(frozen=True, order=True)
class Change:
    """One thing a deploy would change on a host."""

    category: str
    what: str
    task: str

    def to_dict(self) -> dict[str, str]:
        return {"category": self.category, "what": self.what, "task": self.task}


@dataclass(frozen=True)
class CertificateDue:
    """A server certificate inside its renewal window (a deploy renews it first)."""

    host: str
    not_after: str
    message: str

    def to_dict(self) -> dict[str, str]:
        return {"host": self.host, "not_after": self.not_after, "message": self.message}


def _task_file(data: Mapping[str, Any]) -> tuple[str, str]:
    """(role folder, task file) of the task: `.../roles/ovms_models/tasks/version.yml:12` ->
    ("ovms_models", "version.yml"); ("", file) outside a role."""
    path = str(data.get("task_path") or "").rsplit(":", 1)[0]
    parts = PurePosixPath(path).parts
    if len(parts) >= 3 and parts[-2] == "tasks":
        return parts[-3], parts[-1]
    return "", parts[-1] if parts else ""


def _action(data: Mapping[str, Any]) -> str:
    """The module's short name: `community.docker.docker_container` -> `docker_container`."""
    return str(data.get("resolved_action") or data.get("task_action") or "").rsplit(".", 1)[-1]


def _args(res: Mapping[str, Any]) -> Mapping[str, Any]:
    invocation = res.get("invocation")
    args = invocation.get("module_args") if isinstance(invocation, Mapping) else None
    return args if isinstance(args, Mapping) else {}


def _model_version(res: Mapping[str, Any]) -> str:
    """`NAME vN` from ovms_models_swap's result (its `model`/`version`, else its dest folder)."""
    model, version = res.get("model"), res.get("version")
    if not model or version in (None, ""):
        dest = PurePosixPath(str(_args(res).get("dest") or ""))
        model, version = dest.parent.name, dest.name
    return f"{model} v{version}" if model else "a model version"


def _container_change(item: Mapping[str, Any], task: str) -> Change:
    """A docker_container result: new, another image, or the settings that differ (from --diff)."""
    args = _args(item)
    name = str(args.get("name") or item.get("_ansible_item_label") or item.get("item") or "a container")
    diff = item.get("diff") if isinstance(item.get("diff"), Mapping) else {}
    before = diff.get("before") if isinstance(diff.get("before"), Mapping) else {}
    after = diff.get("after") if isinstance(diff.get("after"), Mapping) else {}
    keys = sorted(set(before) | set(after))
    if "exists" in keys and not before.get("exists", True):
        return Change("containers", f"{name} (new)", task)
    if diff.get("image_different") or {"image", "image_name"} & set(keys):
        image = args.get("image") or after.get("image_name") or after.get("image") or ""
        return Change("images", f"{name}: image {image}".rstrip(), task)
    settings = [k for k in keys if k != "running"]
    if settings:
        return Change("containers", f"{name}: {', '.join(settings)}", task)
    if "running" in keys:
        return Change("containers", f"{name} (start)", task)
    return Change("containers", name, task)


def _config_models(text: object) -> dict[str, Any] | None:
    """{model name: its config entry} of an OVMS config.json text, None when it is not one."""
    try:
        config = json.loads(str(text))
    except (TypeError, ValueError):
        return None
    if not isinstance(config, Mapping):
        return None
    models: dict[str, Any] = {}
    for entry in config.get("model_config_list") or []:
        body = entry.get("config") if isinstance(entry, Mapping) else None
        if isinstance(body, Mapping) and body.get("name"):
            models[str(body["name"])] = dict(body)
    return models


def _describe_policy(entry: Mapping[str, Any] | None) -> str:
    if entry is None:
        return "not served"
    policy = entry.get("model_version_policy")
    if not isinstance(policy, Mapping) or not policy:
        return "latest 1"
    if "specific" in policy:
        versions = (policy.get("specific") or {}).get("versions") or []
        return "versions " + ", ".join(str(v) for v in versions)
    if "all" in policy:
        return "all versions"
    return f"latest {(policy.get('latest') or {}).get('num_versions', 1)}"


def _server_config_changes(res: Mapping[str, Any], task: str) -> list[Change]:
    """config.json of the server (with --diff): one `models` change per model entry that differs."""
    diffs = res.get("diff")
    entries = diffs if isinstance(diffs, list) else [diffs] if isinstance(diffs, Mapping) else []
    changes: list[Change] = []
    for diff in entries:
        if not isinstance(diff, Mapping):
            continue
        before, after = _config_models(diff.get("before") or "{}"), _config_models(diff.get("after"))
        if before is None or after is None:
            continue
        for name in sorted(set(before) | set(after)):
            old, new = before.get(name), after.get(name)
            if old == new:
                continue
            old_policy, new_policy = _describe_policy(old), _describe_policy(new)
            what = (
                f"{name}: {old_policy} -> {new_policy}" if old_policy != new_policy else f"{name}: settings"
            )
            changes.append(Change("models", what, task))
    return changes or [Change("other", "server config.json", task)]


def _label(item: Mapping[str, Any]) -> str:
    label = item.get("_ansible_item_label", item.get("item", ""))
    return label if isinstance(label, str) else json.dumps(label, sort_keys=True, default=str)


def _profile_name(task: str) -> str:
    """The profile a task of profile.yml works on: its name ends with `profile NAME`."""
    _, sep, name = task.rpartition("profile ")
    return name.strip() if sep and name.strip() else task


def changes_of(data: Mapping[str, Any]) -> list[Change]:
    """What one changed task result (event_data of a runner_on_ok with changed) means; [] when it is a
    step of a change another task names (the copy of a model version)."""
    res = data.get("res") if isinstance(data.get("res"), Mapping) else {}
    task = str(data.get("task") or "").strip()
    role_dir, file = _task_file(data)
    action = _action(data)
    items = [i for i in res.get("results") or [] if isinstance(i, Mapping) and i.get("changed")]
    if (role_dir, file) == _MODEL_COPY_FILE:
        return [Change("models", _model_version(res), task)] if action == "ovms_models_swap" else []
    if action == "docker_container":
        return [_container_change(i, task) for i in items] if items else [_container_change(res, task)]
    if action == "ovms_image_ship":  # the archives the host lacks (check mode: would ship)
        missing = [
            m.get("tag", m.get("file")) if isinstance(m, Mapping) else m for m in res.get("missing") or []
        ]
        return [Change("images", f"{tag} (ship)", task) for tag in missing] or [Change("images", task, task)]
    if action in _IMAGE_ACTIONS or (role_dir == "prechecks" and file != "check.yml"):
        labels = [_label(i) for i in items] or [str(_args(res).get("name") or task)]
        return [Change("images", label, task) for label in labels]
    if role_dir == "ovms_server" and str(_args(res).get("dest") or "").endswith("/config/config.json"):
        return _server_config_changes(res, task)
    if (role_dir, file) in _PROFILE_FILES:
        return [Change("profiles", _profile_name(task), task)]
    task_file = f"roles/{role_dir}/tasks/{file}"
    if task_file in _CERTIFICATE_FILES or (task_file, action) in _CERTIFICATE_TASKS:
        return [Change("certificates", task, task)]
    if items:
        return [Change("other", f"{task}: {_label(i)}" if _label(i) else task, task) for i in items]
    return [Change("other", task, task)]


@dataclass
class DriftCollector:
    """Keeps the changed results of a check-mode run per host (thread-safe: the runner's thread calls
    `handle`). Results of handlers are left out: the change that notified them is reported."""

    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _changes: dict[str, list[Change]] = field(default_factory=dict)
    _hosts: list[str] = field(default_factory=list)
    _handlers: set[str] = field(default_factory=set)

    def handle(self, event: Mapping[str, Any]) -> None:
        name = event.get("event")
        data = event.get("event_data")
        if not isinstance(data, Mapping):
            return
        with self._lock:
            if name == "playbook_on_handler_task_start":
                self._handlers.add(str(data.get("task_uuid") or event.get("uuid") or ""))
                return
            host = data.get("host")
            if not isinstance(host, str) or not host or not str(name).startswith("runner_on_"):
                return
            if host not in self._hosts:
                self._hosts.append(host)
            if name != "runner_on_ok" or str(data.get("task_uuid") or "") in self._handlers:
                return
            res = data.get("res")
            if not isinstance(res, Mapping) or not res.get("changed"):
                return
            known = self._changes.setdefault(host, [])
            known += [c for c in changes_of(data) if c not in known]

    def changes(self) -> dict[str, list[Change]]:
        with self._lock:
            return {host: list(changes) for host, changes in self._changes.items()}

    @property
    def hosts(self) -> list[str]:
        with self._lock:
            return list(self._hosts)


def collect(events: Iterable[Mapping[str, Any]]) -> DriftCollector:
    """A collector fed with recorded events (in the runner's order)."""
    collector = DriftCollector()
    for event in sorted(events, key=lambda e: int(e.get("counter") or 0)):
        collector.handle(event)
    return collector


@dataclass(frozen=True)
class DriftReport:
    """Per site (in inventory order; "" = hosts without a site) and host: the changes a deploy would
    make. `hosts` lists every host of the run, in order, also those with nothing to change."""

    sites: dict[str, dict[str, list[Change]]]
    certificates: list[CertificateDue] = field(default_factory=list)
    # host -> "failed" / "unreachable" (absent: "ok"), and host -> why (the failed task: its message)
    status: dict[str, str] = field(default_factory=dict)
    reasons: dict[str, str] = field(default_factory=dict)
    # the PKI folders the certificate renewal check could not read (nothing is known of their certs)
    certificate_errors: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return any(changes for hosts in self.sites.values() for changes in hosts.values())

    @property
    def exit_code(self) -> int:
        """1 when a host was not checked or a PKI folder could not be read, else 3 / 0."""
        if self.certificate_errors or any(s != "ok" for s in self.status.values()):
            return EXIT_FAILED
        return EXIT_CHANGES if self.changed else EXIT_NO_CHANGES

    def status_of(self, host: str) -> str:
        return self.status.get(host, "ok")

    def changed_hosts(self) -> list[str]:
        return [host for hosts in self.sites.values() for host, changes in hosts.items() if changes]

    def to_dict(self) -> dict[str, Any]:
        return {
            "changed": self.changed,
            "sites": {
                site: {
                    "hosts": {
                        host: {"changes": [c.to_dict() for c in changes], "status": self.status_of(host)}
                        for host, changes in hosts.items()
                    }
                }
                for site, hosts in self.sites.items()
            },
            "certificates": [c.to_dict() for c in self.certificates],
            "certificate_errors": list(self.certificate_errors),
        }


def build_report(
    hosts: Sequence[str],
    changes: Mapping[str, Sequence[Change]],
    site_of: Mapping[str, str],
    certificates: Sequence[CertificateDue] = (),
    site_order: Sequence[str] = (),
    *,
    status: Mapping[str, str] | None = None,
    reasons: Mapping[str, str] | None = None,
    certificate_errors: Sequence[str] = (),
) -> DriftReport:
    """Group the hosts of the run (`hosts`, in order; hosts with changes, a due certificate or a
    status are added when missing) per site. A due certificate is a `certificates` change of its host.
    `status`: host -> "failed" / "unreachable" (the others are "ok"); `reasons`: host -> why."""
    status = {h: s for h, s in (status or {}).items() if s != "ok"}
    unknown = set(status.values()) - set(STATUSES)
    if unknown:
        raise ValueError(f"unknown host status {sorted(unknown)}: one of {', '.join(STATUSES)}")
    due: dict[str, list[Change]] = {}
    for cert in certificates:
        due.setdefault(cert.host, []).append(
            Change("certificates", cert.message, "renew the server certificate (launcher)")
        )
    ordered = list(dict.fromkeys([*hosts, *changes, *due, *status]))
    sites: dict[str, dict[str, list[Change]]] = {name: {} for name in site_order}
    for host in ordered:
        combined = [*due.get(host, []), *changes.get(host, [])]
        ranked = sorted(combined, key=lambda c: (CATEGORIES.index(c.category), c.what))
        sites.setdefault(site_of.get(host, ""), {})[host] = ranked
    if "" in sites:  # hosts without a site last
        sites[""] = sites.pop("")
    return DriftReport(
        {site: hosts for site, hosts in sites.items() if hosts},
        list(certificates),
        status,
        {h: r for h, r in (reasons or {}).items() if h in status},
        list(certificate_errors),
    )


def render_lines(report: DriftReport) -> list[str]:
    """The human report: one block per site, a line per host with its changes by category (a host
    the check run failed on or could not reach: "not checked (...)", and what was found before), then
    a line per PKI folder the certificate check could not read."""
    lines: list[str] = []
    for site, hosts in report.sites.items():
        lines.append(f"site {site}" if site else "hosts without a site")
        for host, changes in hosts.items():
            by_category: dict[str, list[str]] = {}
            for change in changes:
                by_category.setdefault(change.category, []).append(change.what)
            parts = [f"{category}: {'; '.join(whats)}" for category, whats in by_category.items()]
            status = report.status_of(host)
            if status != "ok":
                reason = report.reasons.get(host)
                head = f"not checked ({status}: {reason})" if reason else f"not checked ({status})"
                found = f"; found before: {' | '.join(parts)}" if parts else ""
                lines.append(f"  {host}: {head}{found}")
            elif parts:
                lines.append(f"  {host}: " + " | ".join(parts))
            else:
                lines.append(f"  {host}: nothing would change")
    lines += [f"certificate check failed: {error}" for error in report.certificate_errors]
    return lines
